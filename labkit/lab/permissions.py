"""What the caller may do, asked of IAM before anything is created: who they are in a class, and a simulation of
every action the workbook needs.

- `caller_of()`: the caller's ARN, the principal to simulate, and, for a class learner (an IAM user under
  /labkit/), the tags on their own user: lab, learner and the cost guardrails the instructor set.
- `simulate()`: every action of labkit.aws.actions.WORKBOOK_ACTIONS (what a whole workbook run records, and what
  AWS checks on its behalf) with `iam:SimulatePrincipalPolicy`, once for each kind of resource the learner
  policies grant it on, with the context the lab's own calls carry: the learner's tags as `aws:PrincipalTag/*`
  (the simulator does not read them from the user: it takes the context it is given, and lists the keys it
  lacked as MissingContextValues; IAM API reference, SimulatePrincipalPolicy), the lab's request and resource
  tags, the instance type and DB class, the boundary, the passed role's service. So a policy that lacks an
  action, or grants it only on other resources, fails here rather than halfway through a notebook.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from labkit.aws.actions import WORKBOOK_ACTIONS
from labkit.aws.backend import Backend
from labkit.aws.errors import error_code
from labkit.aws.policies import (
    BOUNDARY_POLICY,
    LEARNER_POLICIES,
    POLICY_PATH,
    TAG_DB_CLASS,
    TAG_INSTANCE_TYPE,
    policy_arn,
    policy_name,
    render,
)
from labkit.aws.tags import NODE_CLUSTER, TAG_LAB, TAG_LEARNER
from labkit.config import LabConfig

SIMULATE_BATCH = 50  # actions per SimulatePrincipalPolicy call (its pages hold them)
# What each create call authorizes (Service Authorization Reference, Amazon EC2 and Amazon RDS: the "Resource
# types" of each action, those the lab's calls name): the types it creates, which carry the request's tags and
# no resource tags yet, and the existing ones it uses, which carry only their own tags. A statement granting
# several calls on several types says nothing of a pair AWS never checks (CreateVpc on an instance): none is
# simulated. Other actions are simulated on every resource their statements name.
CREATES = {
    "ec2:CreateVpc": ({"vpc"}, set()),
    "ec2:CreateSubnet": ({"subnet"}, {"vpc"}),
    "ec2:CreateInternetGateway": ({"internet-gateway"}, set()),
    "ec2:CreateRouteTable": ({"route-table"}, {"vpc"}),
    "ec2:CreateSecurityGroup": ({"security-group"}, {"vpc"}),
    "ec2:CreateKeyPair": ({"key-pair"}, set()),
    "ec2:RunInstances": ({"instance", "volume", "network-interface"}, {"subnet", "security-group", "key-pair", "image"}),
    "rds:CreateDBCluster": ({"cluster"}, {"subgrp", "cluster-pg"}),
    "rds:CreateDBClusterParameterGroup": ({"cluster-pg"}, set()),
    "rds:CreateDBInstance": ({"db"}, {"cluster"}),
    "rds:CreateDBSubnetGroup": ({"subgrp"}, set()),
    "iam:CreateRole": ({"role"}, set()),
    "iam:CreateInstanceProfile": ({"instance-profile"}, set()),
}  # fmt: skip
# Keys a request carries only for these actions (the same Reference's condition keys): the instance type of a
# launch, the class of a new DB instance.
ACTION_KEYS = {"ec2:RunInstances": "ec2:InstanceType", "rds:CreateDBInstance": "rds:DatabaseClass"}
_VARIABLE = re.compile(r"\$\{([^}]+)\}")
DENIED = ("AccessDenied", "AccessDeniedException")
RESOURCE_TAG_KEYS = ("aws:resourcetag/", "ssm:resourcetag/")


@dataclass(frozen=True)
class Caller:
    """Who calls: the ARN, the IAM principal to simulate (None: root or federated), and the class tags of a
    learner's own IAM user (None: not a class learner, or the tags could not be read)."""

    arn: str
    account: str
    user_id: str
    principal: str | None
    user_name: str | None = None
    tags: dict[str, str] | None = None

    @property
    def class_learner(self) -> bool:
        return self.tags is not None


def principal_arn(arn: str) -> str | None:
    """The IAM user or role to simulate for a caller ARN (an assumed role's session names its role; its path is
    not in the session ARN, so a role under a path is not found and the row says the simulation failed);
    None for the root user and federated users, which the simulator cannot take."""
    parts = arn.split(":", 5)
    if len(parts) != 6:
        return None
    _, partition, _, _, account, resource = parts
    kind, _, names = resource.partition("/")
    if kind == "assumed-role":
        return f"arn:{partition}:iam::{account}:role/{names.split('/')[0]}"
    if kind in ("user", "role") and names:
        return f"arn:{partition}:iam::{account}:{resource}"
    return None


def class_user(arn: str) -> str | None:
    """The user name when `arn` is an IAM user under labkit's path (a class learner), else None."""
    resource = arn.split(":", 5)[-1]
    if not resource.startswith(f"user{POLICY_PATH}"):
        return None
    return resource.rsplit("/", 1)[-1]


def caller_of(backend: Backend, identity: dict[str, Any]) -> Caller:
    """The caller, with a class learner's own tags (iam:ListUserTags on their own user, which learner-read allows)."""
    arn, name = identity["Arn"], class_user(identity["Arn"])
    tags = None
    if name:
        try:
            listed = backend.client("iam").list_user_tags(UserName=name)["Tags"]
            tags = {tag["Key"]: tag["Value"] for tag in listed}
        except ClientError as exc:
            if error_code(exc) not in DENIED:
                raise
    return Caller(arn, identity["Account"], identity.get("UserId", ""), principal_arn(arn), name, tags)


def principal_tags(caller: Caller, config: LabConfig) -> dict[str, str]:
    """The tags the learner policies read as `aws:PrincipalTag/*`: the user's own, else what the config says."""
    if caller.tags is not None:
        return dict(caller.tags)
    return {TAG_LAB: config.lab, TAG_LEARNER: config.learner, TAG_INSTANCE_TYPE: config.instance_type,
            TAG_DB_CLASS: config.db_instance_class}  # fmt: skip


# ----- what to simulate -----


@dataclass(frozen=True)
class Probe:
    """One authorization to simulate: an action on one resource (a concrete ARN, or "*")."""

    action: str
    resource: str
    policy: str  # the labkit managed policy that grants it there ("" when none does)
    created: bool = False  # the resource is the one the call creates: request tags, no resource tags yet


def _values(config: LabConfig, caller: Caller, tags: dict[str, str]) -> dict[str, str]:
    values = {f"aws:PrincipalTag/{key}": value for key, value in tags.items()}
    values |= {"aws:PrincipalAccount": caller.account, "aws:userid": caller.user_id}
    if caller.user_name:
        values["aws:username"] = caller.user_name
    return values


def concrete(pattern: str, config: LabConfig, account: str, values: dict[str, str]) -> str | None:
    """A resource ARN the pattern matches, as the lab's own resources would have: its region and account, the
    variables filled in, each remaining `*` one name (`labkit`). None when a variable has no value here."""
    if pattern == "*":
        return "*"
    try:
        text = _VARIABLE.sub(lambda m: values[m.group(1)], pattern)
    except KeyError:
        return None
    parts = text.split(":", 5)
    if len(parts) != 6:
        return None
    prefix, partition, service, region, owner, resource = parts
    region = config.region if region == "*" else region
    owner = account if owner == "*" else owner
    return ":".join([prefix, partition, service, region, owner, resource.replace("*", "labkit")])


def probes(config: LabConfig, caller: Caller, tags: dict[str, str]) -> list[Probe]:
    """Each workbook action on each kind of resource the learner policies grant it on (one ARN per pattern);
    a create call also on the resource it makes, as new."""
    values = _values(config, caller, tags)
    found: dict[tuple[str, str], Probe] = {}
    for stem in LEARNER_POLICIES:
        for statement in _statements(render(stem, config.partition)):
            for action in _as_list(statement.get("Action")):
                if action not in WORKBOOK_ACTIONS:
                    continue
                for pattern in _as_list(statement.get("Resource")):
                    resource = concrete(pattern, config, caller.account, values)
                    created = _kind(resource) in CREATES.get(action, (set(), set()))[0] if resource else False
                    if resource is not None and _touches(action, resource):
                        found.setdefault((action, resource), Probe(action, resource, policy_name(stem), created))
    for action, (made, _) in CREATES.items():
        if action.startswith("rds:") and (action, "*") in found:  # granted on "*": ask of the new one too
            for kind in made:
                resource = f"arn:{config.partition}:rds:{config.region}:{caller.account}:{kind}:labkit"
                found[(action, resource)] = Probe(action, resource, found[(action, "*")].policy, created=True)
    granted = {action for action, _ in found}
    for action in sorted(WORKBOOK_ACTIONS - granted):
        found[(action, "*")] = Probe(action, "*", "")
    return sorted(found.values(), key=lambda p: (p.resource, p.action))


def _kind(resource: str | None) -> str:
    """An ARN's resource type: `instance` of ...:instance/i-1, `db` of ...:db:name, `role` of ...:role/path/x."""
    if not resource or resource == "*":
        return ""
    return re.split(r"[/:]", resource.split(":", 5)[-1], maxsplit=1)[0]


def _touches(action: str, resource: str) -> bool:
    """Whether AWS authorizes `action` on a resource of this ARN's type (always, for what CREATES omits)."""
    if action not in CREATES or resource == "*":
        return True
    made, used = CREATES[action]
    return _kind(resource) in made | used


def context_entries(
    config: LabConfig, caller: Caller, tags: dict[str, str], action: str | None = None, created: bool = False
) -> list[dict[str, Any]]:
    """The context of the lab's own calls: the learner's tags as principal and request tags, and as resource tags
    of what exists (not of what `action` creates); the instance type or DB class of `action`'s request; the role
    boundary and managed policy; the passed role's service; the cluster secret's tag; a named session document."""
    partition, region, account = config.partition, config.region, caller.account
    cluster = f"arn:{partition}:rds:{region}:{account}:cluster:{config.name(NODE_CLUSTER)}"
    own = {key: tags[key] for key in (TAG_LAB, TAG_LEARNER) if key in tags}
    strings: dict[str, str] = {f"aws:PrincipalTag/{key}": value for key, value in tags.items()}
    for prefix in ("aws:RequestTag",) if created else ("aws:RequestTag", "aws:ResourceTag", "ssm:resourceTag"):
        strings |= {f"{prefix}/{key}": value for key, value in own.items()}
    launched = {"ec2:InstanceType": config.instance_type, "rds:DatabaseClass": config.db_instance_class}
    if action in ACTION_KEYS:
        strings[ACTION_KEYS[action]] = launched[ACTION_KEYS[action]]
    strings |= {
        "aws:ResourceTag/aws:rds:primaryDBClusterArn": cluster,
        "aws:PrincipalAccount": account,
        "ec2:CreateAction": "RunInstances",
        "iam:PermissionsBoundary": policy_arn(BOUNDARY_POLICY, partition, account),
        "iam:PolicyARN": f"arn:{partition}:iam::aws:policy/AmazonSSMManagedInstanceCore",
        "iam:PassedToService": "ec2.amazonaws.com",
        "iam:AWSServiceName": "rds.amazonaws.com",
    }
    if caller.user_name:
        strings["aws:username"] = caller.user_name
    entries = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"} for k, v in strings.items()]
    entries.append({"ContextKeyName": "aws:TagKeys", "ContextKeyValues": sorted(own), "ContextKeyType": "stringList"})
    entries.append({"ContextKeyName": "ssm:SessionDocumentAccessCheck", "ContextKeyValues": ["true"],
                    "ContextKeyType": "boolean"})  # fmt: skip
    return entries


# ----- the simulation -----


@dataclass
class Simulation:
    """Per action: allowed everywhere it was asked, explicitly denied, denied, or denied for want of context."""

    principal: str
    probes: int = 0
    denied: dict[str, list[Probe]] = field(default_factory=dict)  # explicitly denied
    missing: dict[str, list[Probe]] = field(default_factory=dict)  # implicitly denied, with all context given
    unsure: dict[str, list[str]] = field(default_factory=dict)  # implicitly denied; the keys it lacked
    actions: set[str] = field(default_factory=set)

    @property
    def allowed(self) -> set[str]:
        return self.actions - set(self.denied) - set(self.missing) - set(self.unsure)


def simulate(backend: Backend, config: LabConfig, caller: Caller) -> Simulation:
    """Simulate every workbook action for the caller, grouped by resource (the simulator evaluates each action
    for each resource it is given, so one resource per call keeps the answer per probe)."""
    assert caller.principal is not None
    tags = principal_tags(caller, config)
    asked = probes(config, caller, tags)
    result = Simulation(caller.principal, len(asked), actions={probe.action for probe in asked})
    by_resource: dict[tuple[str, str | None, bool], list[Probe]] = {}
    for probe in asked:  # one call per resource, per new or existing, per action whose request has keys of its own
        own = probe.action if probe.action in ACTION_KEYS else None
        by_resource.setdefault((probe.resource, own, probe.created), []).append(probe)
    iam = backend.client("iam")
    for (resource, own, created), group in by_resource.items():
        entries = context_entries(config, caller, tags, own, created)
        for start in range(0, len(group), SIMULATE_BATCH):
            batch = {probe.action: probe for probe in group[start : start + SIMULATE_BATCH]}
            for answer in _ask(iam, caller.principal, sorted(batch), resource, entries):
                probe = batch[answer["EvalActionName"]]
                decision, lacking = answer["EvalDecision"], answer.get("MissingContextValues") or []
                if probe.created:  # a new resource has no tags yet: their absence is the true context
                    lacking = [key for key in lacking if not key.lower().startswith(RESOURCE_TAG_KEYS)]
                if decision == "explicitDeny":
                    result.denied.setdefault(probe.action, []).append(probe)
                elif decision != "allowed" and lacking:
                    result.unsure.setdefault(probe.action, []).extend(lacking)
                elif decision != "allowed":
                    result.missing.setdefault(probe.action, []).append(probe)
    return result


def _ask(iam: Any, principal: str, actions: list[str], resource: str, entries: list[dict[str, Any]]) -> Iterable[dict]:
    extra = {} if resource == "*" else {"ResourceArns": [resource]}
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=principal, ActionNames=actions, ContextEntries=entries, **extra
    )
    for page in pages:
        yield from page.get("EvaluationResults", [])


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return [s for s in ([found] if isinstance(found, dict) else found) if s.get("Effect") == "Allow"]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
