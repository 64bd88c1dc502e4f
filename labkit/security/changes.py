"""Deliberate rule changes for the exercises: remove the rules that open a port on a lab group (break it), and
allow a port into or out of a lab group (what the learner writes to fix it, or to build it in 01)."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from labkit.aws.backend import Backend
from labkit.aws.errors import error_code
from labkit.aws.tags import ec2_filters, lab_tags, resource_name
from labkit.errors import ConfigError
from labkit.security.fixes import authorize, revoke

if TYPE_CHECKING:
    import pandas as pd

DIRECTIONS = ("ingress", "egress")  # as the rules table writes them


def revoke_rules(
    config: Any, group: str, port: int, direction: str = "ingress", backend: Backend | None = None
) -> pd.DataFrame:
    """Revoke every `direction` rule of the lab group `group` (e.g. "sg-db") that opens `port`.

    Returns the rules removed (the rules-table rows). Nothing matching is an error that says what exists.
    """
    if direction not in DIRECTIONS:
        raise ConfigError(
            f"unknown direction {direction!r}", field="direction", fix="use 'ingress' (inbound) or 'egress' (outbound)"
        )
    from labkit.security.tables import security_groups  # heavy dependency (pandas): the result is a rules table

    backend = backend or config.make_backend()
    rules = security_groups(config, backend)
    name = resource_name(config.lab, config.learner, group)
    chosen = rules[(rules["group"] == name) & (rules["direction"] == direction) & (rules["ports"] == str(port))]
    if chosen.empty:
        raise ConfigError(
            f"{name} has no {direction} rule for port {port}",
            field="group",
            fix="look at `labkit.security_groups(config)` for the rules that exist",
        )
    for row in chosen.itertuples():
        revoke(row.group_id, row.rule_id, egress=direction == "egress").run(backend)
    return chosen.drop(columns=["group_id", "rule_id"]).reset_index(drop=True)


# ----- allowing traffic: what the learner writes in the exercises (and what the lint's fixes would do) -----

GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")


def _group_id(config: Any, backend: Backend, group: Any, field: str) -> str:
    """The id of a lab group named by its node ("sg-db", "sg-app"), or a security group id given as it is."""
    if not isinstance(group, str) or not group.strip():
        raise ConfigError(f"{group!r} is not a security group", field=field, fix='name a lab group, e.g. "sg-db"')
    if GROUP_ID.match(group):
        return group
    found = backend.client("ec2").describe_security_groups(Filters=ec2_filters(config.lab, config.learner, group))
    ids = [g["GroupId"] for g in found["SecurityGroups"]]
    if len(ids) != 1:
        name = resource_name(config.lab, config.learner, group)
        raise ConfigError(
            f"the lab has no security group {group!r} ({name})" if not ids else f"{len(ids)} lab groups are {group!r}",
            field=field,
            fix='use "sg-app" or "sg-db" (build them with the network stage), or a group id such as sg-0123abcd',
        )
    return ids[0]


def _port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{port!r} is not a TCP port", field="port", fix="give a port from 1 to 65535")
    return port


def _cidr(cidr: Any) -> str:
    try:
        return str(ipaddress.ip_network(str(cidr), strict=False))
    except ValueError:
        raise ConfigError(
            f"{cidr!r} is not an address range", field="cidr", fix="write a CIDR such as 10.0.0.0/16"
        ) from None


def _authorize(
    config: Any, group: str, port: int, peer_group: str | None, cidr: str | None, *, egress: bool,
    description: str, backend: Backend | None,
) -> pd.DataFrame:  # fmt: skip
    direction = "egress" if egress else "ingress"
    peer_field = "destination_group" if egress else "source_group"
    if (peer_group is None) == (cidr is None):
        raise ConfigError(
            f"say where the traffic may {'go' if egress else 'come from'}: a group or an address range, one of them",
            field=peer_field,
            fix=f'pass {peer_field}="sg-..." (a group reference, what the lab uses) or cidr="10.0.0.0/16"',
        )
    from labkit.security.tables import security_groups  # heavy dependency (pandas): the result is a rules table

    backend = backend or config.make_backend()
    group_id = _group_id(config, backend, group, "group")
    peer_id = _group_id(config, backend, peer_group, peer_field) if peer_group is not None else None
    call = authorize(
        group_id, _port(port), egress=egress, group=peer_id, cidr=_cidr(cidr) if cidr is not None else None,
        description=description,
    )  # fmt: skip
    node = group if not GROUP_ID.match(group) else "security-group-rule"
    call.params["TagSpecifications"] = [
        {"ResourceType": "security-group-rule", "Tags": lab_tags(config.lab, config.learner, node)}
    ]
    try:
        made = [r["SecurityGroupRuleId"] for r in call.run(backend).get("SecurityGroupRules", [])]
    except ClientError as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise
        print(f"{group} already has this {direction} rule: nothing changed", flush=True)
        made = []
    rules = security_groups(config, backend)
    chosen = rules[rules["rule_id"].isin(made)] if made else rules[
        (rules["group_id"] == group_id) & (rules["direction"] == direction) & (rules["ports"] == str(port))
    ]  # fmt: skip
    return chosen.drop(columns=["group_id", "rule_id"]).reset_index(drop=True)


def authorize_ingress(
    config: Any, group: str, port: int, *, source_group: str | None = None, cidr: str | None = None,
    description: str = "", backend: Backend | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Allow tcp `port` into the lab group `group` (e.g. "sg-db") from another group (`source_group`, by
    reference: it follows the group's members wherever their addresses are) or from an address range (`cidr`).

    The same call as the console's "Edit inbound rules" and boto3's authorize_security_group_ingress; the rule is
    tagged with the lab. Returns the rule as a rules-table row."""
    return _authorize(config, group, port, source_group, cidr, egress=False, description=description, backend=backend)


def authorize_egress(
    config: Any, group: str, port: int, *, destination_group: str | None = None, cidr: str | None = None,
    description: str = "", backend: Backend | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Allow tcp `port` out of the lab group `group` (e.g. "sg-app") to another group (`destination_group`) or an
    address range (`cidr`): boto3's authorize_security_group_egress. Returns the rule as a rules-table row."""
    return _authorize(
        config, group, port, destination_group, cidr, egress=True, description=description, backend=backend
    )
