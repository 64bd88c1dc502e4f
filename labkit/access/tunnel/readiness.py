"""Can Session Manager reach this instance? The checks the SSM agent depends on, each with its fix.

The same diagnosis serves both backends: on AWS it explains why an instance is not Online; the sandbox's
control plane uses it to decide whether to report the instance Online at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from labkit.access.lookup import find_instance, running_instance
from labkit.aws.backend import Backend
from labkit.aws.regions import partition_of
from labkit.aws.tags import NODE_INSTANCE_PROFILE, TAG_LAB, TAG_LEARNER, resource_name, tag_dict
from labkit.config import lab_and_backend
from labkit.errors import LabkitError
from labkit.security.reach import Reachability

SSM_POLICY = "AmazonSSMManagedInstanceCore"
SSM_POLICY_ARN = f"arn:aws:iam::aws:policy/{SSM_POLICY}"  # in the aws partition; see ssm_policy_arn
SSM_SERVICES = ("ssm", "ssmmessages", "ec2messages")  # the agent talks to all three over https


def ssm_policy_arn(region: str) -> str:
    """The AWS-managed SSM policy's ARN in the region's partition (arn:aws-cn: in China, arn:aws-us-gov: in
    GovCloud): AWS-managed policies live in each partition under its own prefix."""
    return f"arn:{partition_of(region)}:iam::aws:policy/{SSM_POLICY}"


@dataclass(frozen=True)
class Check:
    """One thing the SSM agent needs, whether it holds, and what to do when it does not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True, repr=False)
class Readiness:
    """Every check for one instance, in the order the agent needs them."""

    instance_id: str
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def error(self) -> LabkitError:
        """The first problem as a LabkitError (call only when not ready)."""
        first = self.problems[0]
        return LabkitError(
            f"Session Manager cannot reach {self.instance_id}: {first.name} fails ({first.detail})",
            field="instance",
            fix=first.fix,
        )

    def __str__(self) -> str:
        lines = [f"Session Manager readiness of {self.instance_id}: {'ready' if self.ready else 'NOT ready'}"]
        for check in self.checks:
            lines.append(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
            if not check.ok and check.fix:
                lines.append(f"       fix: {check.fix}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        lines = [f"Session Manager readiness of `{self.instance_id}`: **{'ready' if self.ready else 'not ready'}**"]
        lines += ["", "| | check | detail | fix |", "|---|---|---|---|"]
        for check in self.checks:
            mark = "ok" if check.ok else "**fails**"
            lines.append(
                f"| {mark} | {check.name} | {_cell(check.detail)} | {_cell(check.fix if not check.ok else '')} |"
            )
        return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def diagnose(backend: Backend, instance_id: str) -> Readiness:
    """Check, in order: the instance runs, has a profile, the profile's role has the SSM policy, it can reach SSM."""
    instance = find_instance(backend, instance_id)
    checks = [_running(instance_id, instance)]
    if instance is not None:
        profile_check, role = _profile(backend, instance)
        checks.append(profile_check)
        checks.append(_policy(backend, role))
        checks.append(_route_to_ssm(backend, instance))
    return Readiness(instance_id, tuple(checks))


def readiness(config: Any | None = None, backend: Backend | None = None) -> Readiness:
    """Session Manager readiness of the lab's instance (see `diagnose`): `labkit.readiness(config)`. It lives in
    this module, not in the package's `__init__`, so `labkit.access.tunnel.readiness` is always this module."""
    config, backend = lab_and_backend(config, backend)
    return diagnose(backend, running_instance(backend, config=config))


def _running(instance_id: str, instance: dict[str, Any] | None) -> Check:
    name = "instance is running"
    if instance is None:
        return Check(
            name,
            False,
            f"{instance_id} does not exist in this region",
            "check the id and region, or create it (labkit up)",
        )
    state = instance["State"]["Name"]
    if state != "running":
        admin = f"aws ec2 start-instances --instance-ids {instance_id}"
        return Check(name, False, f"state is {state}", _replace_instance(instance_id, admin))
    return Check(name, True, "running")


def _replace_instance(instance_id: str, admin_fix: str) -> str:
    """A fix the learner policy allows (it grants terminating a lab instance, and labkit makes a new one), then
    what an administrator could do instead (the learner policy grants neither StartInstances nor
    AssociateIamInstanceProfile)."""
    return (
        f"replace it: aws ec2 terminate-instances --instance-ids {instance_id}, then `labkit up` makes a new one "
        f"(an administrator can instead run: {admin_fix})"
    )


def _profile(backend: Backend, instance: dict[str, Any]) -> tuple[Check, dict[str, Any] | None]:
    name = "instance profile attached"
    arn = (instance.get("IamInstanceProfile") or {}).get("Arn")
    if not arn:
        admin = (
            f"aws ec2 associate-iam-instance-profile --instance-id {instance['InstanceId']} "
            f"--iam-instance-profile Name={_lab_profile(instance)}"
        )
        fix = _replace_instance(instance["InstanceId"], admin)
        return Check(
            name, False, "the instance has no IAM instance profile, so the agent has no credentials", fix
        ), None
    profile_name = arn.rsplit("/", 1)[-1]
    try:
        profile = backend.client("iam").get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]
    except ClientError:
        return Check(name, False, f"profile {profile_name} no longer exists", "re-create it (labkit up)"), None
    roles = profile.get("Roles", [])
    if not roles:
        return Check(
            name, False, f"profile {profile_name} holds no role", "add the lab's role to the profile (labkit up)"
        ), None
    return Check(name, True, f"{profile_name} with role {roles[0]['RoleName']}"), roles[0]


def _lab_profile(instance: dict[str, Any]) -> str:
    """The instance profile labkit makes for the instance's lab and learner (from its tags)."""
    tags = tag_dict(instance.get("Tags"))
    if TAG_LAB in tags and TAG_LEARNER in tags:
        return resource_name(tags[TAG_LAB], tags[TAG_LEARNER], NODE_INSTANCE_PROFILE)
    return "PROFILE"


def _policy(backend: Backend, role: dict[str, Any] | None) -> Check:
    name = f"role has {SSM_POLICY}"
    if role is None:
        return Check(name, False, "no role to check", "fix the instance profile first")
    attached = backend.client("iam").list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    policy_arn = ssm_policy_arn(backend.region)
    if any(p["PolicyArn"] == policy_arn for p in attached):
        return Check(name, True, f"attached to {role['RoleName']}")
    fix = f"aws iam attach-role-policy --role-name {role['RoleName']} --policy-arn {policy_arn}"
    return Check(name, False, f"{role['RoleName']} lacks it, so the agent cannot register", fix)


def _route_to_ssm(backend: Backend, instance: dict[str, Any]) -> Check:
    """Outbound https to the SSM endpoints: through interface VPC endpoints, or else the internet."""
    name = "outbound https to the SSM endpoints"
    endpoints = _ssm_vpc_endpoints(backend, instance.get("VpcId"))
    if len(endpoints) == len(SSM_SERVICES):
        return Check(name, True, "through interface VPC endpoints for " + ", ".join(SSM_SERVICES))
    verdict = Reachability.snapshot(backend, instance_ids=(instance["InstanceId"],), lab=False).check(
        instance["InstanceId"], "internet", 443
    )
    if verdict.reachable:
        return Check(name, True, "through the internet (" + verdict.path + ")")
    blocked = verdict.blocked_by
    detail = f"blocked at {blocked.step}: {blocked.rule}" if blocked else "blocked"
    fix = (verdict.fix or "").replace("\n", "; ") or "open egress tcp 443 and give the subnet a route out"
    return Check(name, False, detail, fix + " (or create interface VPC endpoints for ssm, ssmmessages, ec2messages)")


def _ssm_vpc_endpoints(backend: Backend, vpc_id: str | None) -> set[str]:
    """Which of SSM_SERVICES the VPC has an available interface endpoint for. Matched by the name's end: the
    prefix is the partition's (com.amazonaws. in most, cn.com.amazonaws. for most services in China: AWS in China,
    "Amazon VPC" endpoint service names)."""
    if not vpc_id:
        return set()
    try:
        found = backend.client("ec2").describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    except ClientError:
        return set()
    available = {e["ServiceName"] for e in found["VpcEndpoints"] if e.get("State", "available").lower() == "available"}
    return {s for s in SSM_SERVICES if any(name.endswith(f".{backend.region}.{s}") for name in available)}
