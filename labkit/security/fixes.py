"""A fix is the exact change that would clear a finding or unblock a path: one or more API calls, shown as
boto3 code and as AWS CLI commands, and runnable through a backend."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

from labkit.aws.backend import Backend


@dataclass(frozen=True)
class ApiCall:
    """One AWS API call: `service`, the boto3 method name and its parameters."""

    service: str
    operation: str
    params: dict[str, Any] = field(default_factory=dict)

    def python(self) -> str:
        """The call as boto3 code, e.g. `ec2.authorize_security_group_ingress(GroupId='sg-1', ...)`."""
        args = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{self.service}.{self.operation}({args})"

    def cli(self) -> str:
        """The call as an AWS CLI command."""
        parts = ["aws", self.service, self.operation.replace("_", "-")]
        for key, value in self.params.items():
            parts.extend(_cli_option(key, value))
        return " ".join(parts)

    def run(self, backend: Backend) -> dict[str, Any]:
        """Make the call through the backend's client."""
        return getattr(backend.client(self.service), self.operation)(**self.params)


def _cli_option(key: str, value: Any) -> list[str]:
    option = "--" + xform_name(key, "-")
    if isinstance(value, bool):
        return [option if value else "--no-" + option[2:]]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [option, *(shlex.quote(v) for v in value)]
    if isinstance(value, list | dict):
        return [option, shlex.quote(json.dumps(value, separators=(",", ":")))]
    return [option, shlex.quote(str(value))]


@dataclass(frozen=True)
class Fix:
    """What to change: a one-line summary, the calls that make the change, and a caution when it has one.

    A fix without calls is a manual change (the summary says what to do).
    """

    summary: str
    calls: tuple[ApiCall, ...] = ()
    caution: str | None = None

    def python(self) -> str:
        return "\n".join(call.python() for call in self.calls)

    def cli(self) -> str:
        return "\n".join(call.cli() for call in self.calls)

    def apply(self, backend: Backend) -> list[dict[str, Any]]:
        """Make the change. Raises when the fix is manual."""
        if not self.calls:
            raise ValueError(f"this fix is a manual change: {self.summary}")
        return [call.run(backend) for call in self.calls]

    def __str__(self) -> str:
        lines = [self.summary, *(call.cli() for call in self.calls)]
        if self.caution:
            lines.append(f"caution: {self.caution}")
        return "\n".join(lines)

    def markdown(self) -> str:
        text = self.summary
        if self.calls:
            text += "\n\n```python\n" + self.python() + "\n```\n\n```sh\n" + self.cli() + "\n```"
        if self.caution:
            text += f"\n\n*Caution:* {self.caution}"
        return text


def _permission(port: int, *, group: str | None = None, cidr: str | None = None, description: str = "") -> dict:
    permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if group:
        permission["UserIdGroupPairs"] = [{"GroupId": group, "Description": description}]
    elif cidr and ":" in cidr:
        permission["Ipv6Ranges"] = [{"CidrIpv6": cidr, "Description": description}]
    elif cidr:
        permission["IpRanges"] = [{"CidrIp": cidr, "Description": description}]
    return permission


def authorize(
    group_id: str, port: int, *, egress: bool, group: str | None, cidr: str | None, description: str
) -> ApiCall:
    """Allow tcp `port` in or out of `group_id`, to or from a group (preferred) or a CIDR."""
    operation = "authorize_security_group_egress" if egress else "authorize_security_group_ingress"
    permission = _permission(port, group=group, cidr=cidr, description=description)
    return ApiCall("ec2", operation, {"GroupId": group_id, "IpPermissions": [permission]})


def revoke(group_id: str, rule_id: str, *, egress: bool) -> ApiCall:
    """Remove one rule by its id (the way that works the same on AWS and moto)."""
    operation = "revoke_security_group_egress" if egress else "revoke_security_group_ingress"
    return ApiCall("ec2", operation, {"GroupId": group_id, "SecurityGroupRuleIds": [rule_id]})
