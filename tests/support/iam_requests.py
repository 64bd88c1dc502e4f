"""Which authorizations AWS makes for one API call, and an enforcer that applies tests/support/iam_eval to them.

AWS authorizes a call once per resource it touches (Service Authorization Reference: the "Resource types"
column of each action, each row with its own condition keys), with request-level keys (iam:PermissionsBoundary,
iam:PassedToService, iam:PolicyARN, ec2:CreateAction, rds:DatabaseClass) and per-resource keys
(aws:ResourceTag/*, ssm:resourceTag/*, ec2:InstanceType on the instance). `authorizations()` builds that list
for the calls labkit makes, reading the current tags of existing resources as the account's admin (moto,
un-enforced).

Tags in a request go only to what the call creates: EC2 puts aws:RequestTag/* and aws:TagKeys on the resources
being created, each with the TagSpecifications of its own ResourceType, and the existing subnet, security
group, VPC or key pair the call uses carries only aws:ResourceTag/* (Service Authorization Reference, Amazon EC2:
the RunInstances and CreateSecurityGroup rows list aws:RequestTag for the created types only; EC2 User Guide,
"Grant permission to tag Amazon EC2 resources during creation"). The actions AWS checks on the caller's behalf
come from labkit.aws.actions.implied_actions, each tied to the resource AWS checks it on. A call this module
does not know raises, so a new labkit call cannot pass unchecked: model it here.

`StrictIam(principal_loader).enforcing(backend)` denies, with AccessDenied before the request reaches moto,
every call the principal's real policies (conditions, variables, boundary) would not allow, and logs each
decision.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote

from botocore.exceptions import ClientError
from support.iam_eval import Decision, Principal, Request, evaluate

from labkit.aws.actions import iam_action, implied_actions

READ_PREFIXES = ("Describe", "List", "Get")
# A session's id starts with the name of whoever started it (Session Manager User Guide, "Step 3: Control session
# access to managed nodes": arn:aws:ssm:us-east-2:123456789012:session/JohnDoe-1a2b3c4d5eEXAMPLE).
SESSION_SUFFIX = "0a1b2c3d4e5f67890"


def _tags(pairs: list[dict[str, str]] | None) -> dict[str, str]:
    return {pair["Key"]: pair["Value"] for pair in pairs or []}


def _request_tags(params: dict[str, Any], kind: str = "") -> dict[str, str]:
    """The tags a request gives the resource it creates: `Tags` (RDS, IAM: one resource), or the
    TagSpecifications of its own EC2 ResourceType."""
    tags = _tags(params.get("Tags"))
    for spec in params.get("TagSpecifications") or []:
        if not kind or spec.get("ResourceType") == kind:
            tags |= _tags(spec.get("Tags"))
    return tags


@dataclass(frozen=True)
class Target:
    """A resource the call touches: its ARN and, for an existing one, its tags (None: it is being created)."""

    arn: str
    tags: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # per-resource keys (iam:PermissionsBoundary of a role)
    kind: str = ""  # for a created EC2 resource: its TagSpecifications ResourceType


class World:
    """Reads the account as its admin: ARNs and current tags of the resources a call names."""

    def __init__(self, admin: Callable[[str], Any], region: str, account: str, partition: str = "aws") -> None:
        self.client = admin
        self.region, self.account, self.partition = region, account, partition

    def arn(self, service: str, resource: str, *, region: str | None = None, account: str | None = None) -> str:
        region = self.region if region is None else region
        account = self.account if account is None else account
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"

    # ----- EC2 -----
    _EC2_TYPES: ClassVar[dict[str, str]] = {"vpc": "vpc", "subnet": "subnet", "igw": "internet-gateway", "rtb": "route-table",
                  "sg": "security-group", "i": "instance", "eni": "network-interface", "vol": "volume",
                  "key": "key-pair", "sgr": "security-group-rule", "ami": "image"}  # fmt: skip

    def ec2(self, resource_id: str) -> Target:
        kind = self._EC2_TYPES[resource_id.split("-")[0]]
        if kind == "image":
            return Target(self.arn("ec2", f"image/{resource_id}", account=""), {})
        found = self.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
        return Target(self.arn("ec2", f"{kind}/{resource_id}"), {t["Key"]: t["Value"] for t in found})

    def ec2_new(self, kind: str, extra: dict[str, Any] | None = None) -> Target:
        return Target(self.arn("ec2", f"{kind}/new-{uuid.uuid4().hex[:8]}"), extra=extra or {}, kind=kind)

    def key_pair(self, params: dict[str, Any]) -> Target:
        pairs = self.client("ec2").describe_key_pairs(
            **({"KeyPairIds": [params["KeyPairId"]]} if params.get("KeyPairId") else {"KeyNames": [params["KeyName"]]})
        )["KeyPairs"]
        return Target(self.arn("ec2", f"key-pair/{pairs[0]['KeyPairId']}"), _tags(pairs[0].get("Tags")))

    def route_table_of_association(self, association: str) -> str:
        filters = [{"Name": "association.route-table-association-id", "Values": [association]}]
        return self.client("ec2").describe_route_tables(Filters=filters)["RouteTables"][0]["RouteTableId"]

    # ----- RDS -----
    def rds(self, kind: str, name: str) -> Target:
        arn = self.arn("rds", f"{kind}:{name}")
        return Target(arn, _tags(self.client("rds").list_tags_for_resource(ResourceName=arn)["TagList"]))

    # ----- IAM -----
    def role(self, name: str) -> Target:
        role = self.client("iam").get_role(RoleName=name)["Role"]
        boundary = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        return Target(role["Arn"], _tags(role.get("Tags")), {"iam:PermissionsBoundary": boundary} if boundary else {})

    def profile(self, name: str) -> tuple[Target, list[str]]:
        profile = self.client("iam").get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        return Target(profile["Arn"], _tags(profile.get("Tags"))), [r["RoleName"] for r in profile.get("Roles", [])]

    def iam_arn(self, kind: str, path: str | None, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:{kind}{path or '/'}{name}"

    def user(self, name: str) -> Target:
        user = self.client("iam").get_user(UserName=name)["User"]
        boundary = (user.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        return Target(user["Arn"], _tags(user.get("Tags")), {"iam:PermissionsBoundary": boundary} if boundary else {})

    # ----- Secrets Manager, SSM -----
    def secret(self, secret_id: str) -> Target:
        found = self.client("secretsmanager").describe_secret(SecretId=secret_id)
        return Target(found["ARN"], _tags(found.get("Tags")))

    def instance(self, instance_id: str) -> Target:
        target = self.ec2(instance_id)
        ssm_keys = {f"ssm:resourceTag/{k}": v for k, v in (target.tags or {}).items()}
        return Target(target.arn, target.tags, ssm_keys)

    def document(self, name: str) -> Target:
        owner = "" if name.startswith("AWS-") else self.account  # AWS-owned documents have no account in the ARN
        return Target(self.arn("ssm", f"document/{name}", account=owner), {})


def _ec2_targets(world: World, op: str, p: dict[str, Any]) -> list[Target]:
    new = {"CreateVpc": ["vpc"], "CreateSubnet": ["subnet"], "CreateInternetGateway": ["internet-gateway"],
           "CreateRouteTable": ["route-table"], "CreateSecurityGroup": ["security-group"],
           "CreateKeyPair": ["key-pair"], "RunInstances": ["instance", "volume", "network-interface"],
           "AuthorizeSecurityGroupIngress": ["security-group-rule"],
           "AuthorizeSecurityGroupEgress": ["security-group-rule"]}  # fmt: skip
    # the instance's type is a key of the instance resource only (Service Authorization Reference, RunInstances)
    typed = {"instance": {"ec2:InstanceType": p["InstanceType"]}} if op == "RunInstances" else {}
    targets = [world.ec2_new(kind, typed.get(kind)) for kind in new.get(op, [])]
    ids: list[str] = []
    for key in ("VpcId", "SubnetId", "GroupId", "InternetGatewayId", "RouteTableId", "NetworkInterfaceId", "ImageId"):
        if p.get(key):
            ids.append(p[key])
    ids += list(p.get("SecurityGroupIds") or []) + list(p.get("InstanceIds") or []) + list(p.get("Resources") or [])
    if op == "DisassociateRouteTable":
        ids.append(world.route_table_of_association(p["AssociationId"]))
    if op in ("RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress"):
        targets += [Target(world.arn("ec2", f"security-group-rule/{r}"), {}) for r in p.get("SecurityGroupRuleIds", [])]
    if op in ("DeleteKeyPair", "RunInstances") and (p.get("KeyName") or p.get("KeyPairId")):
        targets.append(world.key_pair(p))
    if op not in new and not ids and not targets:
        raise NotImplementedError(f"ec2:{op}: which resources it touches is not modelled")
    return targets + [world.ec2(resource_id) for resource_id in ids]


def _rds_targets(world: World, op: str, p: dict[str, Any]) -> list[Target]:
    new = {"CreateDBCluster": ("cluster", "DBClusterIdentifier"), "CreateDBInstance": ("db", "DBInstanceIdentifier"),
           "CreateDBSubnetGroup": ("subgrp", "DBSubnetGroupName"),
           "CreateDBClusterParameterGroup": ("cluster-pg", "DBClusterParameterGroupName")}  # fmt: skip
    targets = []
    if op in new:
        kind, key = new[op]
        targets.append(Target(world.arn("rds", f"{kind}:{p[key]}")))
    existing = {"DBClusterIdentifier": "cluster", "DBInstanceIdentifier": "db", "DBSubnetGroupName": "subgrp",
                "DBClusterSnapshotIdentifier": "cluster-snapshot",
                "DBClusterParameterGroupName": "cluster-pg"}  # fmt: skip
    for key, kind in existing.items():
        if p.get(key) and not (op in new and new[op][1] == key):
            targets.append(world.rds(kind, p[key]))
    if op == "AddTagsToResource":
        kind, _, name = p["ResourceName"].split(":", 5)[-1].partition(":")  # arn:aws:rds:REGION:ACCOUNT:kind:name
        targets.append(world.rds(kind, name))
    if not targets:
        raise NotImplementedError(f"rds:{op}: which resources it touches is not modelled")
    return targets


def _iam_targets(world: World, op: str, p: dict[str, Any]) -> list[Target]:
    if op == "CreateRole":
        return [Target(world.iam_arn("role", p.get("Path"), p["RoleName"]))]
    if op == "CreateInstanceProfile":
        return [Target(world.iam_arn("instance-profile", p.get("Path"), p["InstanceProfileName"]))]
    if op == "CreateUser":
        return [Target(world.iam_arn("user", p.get("Path"), p["UserName"]))]
    if op == "CreatePolicy":
        return [Target(world.iam_arn("policy", p.get("Path"), p["PolicyName"]))]
    if op == "CreateServiceLinkedRole":
        service = p["AWSServiceName"]
        return [Target(world.iam_arn("role", f"/aws-service-role/{service}/", "AWSServiceRoleForRDS"))]
    if op == "SimulatePrincipalPolicy":
        return [Target(p["PolicySourceArn"], {})]
    if "InstanceProfileName" in p:
        return [world.profile(p["InstanceProfileName"])[0]]
    if "RoleName" in p:
        return [world.role(p["RoleName"])]
    if "UserName" in p:
        return [world.user(p["UserName"])]
    if "PolicyArn" in p:
        return [Target(p["PolicyArn"], {})]
    raise NotImplementedError(f"iam:{op}: which resources it touches is not modelled")


def _targets(world: World, service: str, op: str, p: dict[str, Any]) -> list[Target]:
    if service == "ec2" and not op.startswith(READ_PREFIXES):
        return _ec2_targets(world, op, p)
    if service == "rds" and not op.startswith(READ_PREFIXES) and op != "ListTagsForResource":
        return _rds_targets(world, op, p)
    if service == "iam" and op not in ("ListRoles", "ListInstanceProfiles", "ListUsers", "ListPolicies"):
        return _iam_targets(world, op, p)
    if service == "secretsmanager" and op != "ListSecrets":
        return [world.secret(p["SecretId"])]
    if service == "ssm" and op == "StartSession":
        # The document is authorized only when the request names one (Session Manager User Guide, "Start a session
        # with a document by specifying the session documents in IAM policies"); see _request_context for the rest.
        named = [world.document(p["DocumentName"])] if p.get("DocumentName") else []
        return [world.instance(p["Target"]), *named]
    if service == "ssm" and op == "SendCommand":
        return [*(world.instance(i) for i in p.get("InstanceIds", [])), world.document(p["DocumentName"])]
    if service == "ssm" and op in ("TerminateSession", "ResumeSession"):
        return [Target(world.arn("ssm", f"session/{p['SessionId']}"), {})]
    if service == "ssm" and op == "GetParameter":
        owner = "" if p["Name"].startswith("/aws/") else world.account
        return [Target(world.arn("ssm", f"parameter{p['Name']}", account=owner), {})]
    if op.startswith(READ_PREFIXES) or service in ("sts", "pricing", "service-quotas", "resourcegroupstaggingapi"):
        return [Target("*", {})]  # no resource-level permissions (Service Authorization Reference)
    raise NotImplementedError(f"{service}:{op}: which resources it touches is not modelled")


def _tag_context(tags: dict[str, str]) -> dict[str, Any]:
    if not tags:
        return {}
    return {f"aws:RequestTag/{k}": v for k, v in tags.items()} | {"aws:TagKeys": sorted(tags)}


def _request_context(service: str, op: str, p: dict[str, Any], world: World) -> dict[str, Any]:
    """The keys every authorization of the call carries (request tags are per created resource: _created_tags)."""
    context: dict[str, Any] = {}
    if op in ("TagUser", "TagRole", "TagInstanceProfile", "CreateTags", "AddTagsToResource", "TagResource"):
        context |= _tag_context(_request_tags(p))  # a tagging call's tags are its request
    bounded = ("CreateRole", "CreateUser", "PutUserPermissionsBoundary", "PutRolePermissionsBoundary")
    if service == "iam" and op in bounded and p.get("PermissionsBoundary"):
        context["iam:PermissionsBoundary"] = p["PermissionsBoundary"]
    database_class = p.get("DBInstanceClass") or p.get("DBClusterInstanceClass")
    if service == "rds" and op in ("CreateDBInstance", "CreateDBCluster") and database_class:
        context["rds:DatabaseClass"] = database_class
    if service == "ssm" and op == "StartSession":
        # ssm:SessionDocumentAccessCheck (Session Manager User Guide, "Enforce a session document permission check
        # when starting a session"): a start without a document name is allowed only by a statement that does not
        # carry `BoolIfExists ssm:SessionDocumentAccessCheck true`; so with it on every statement that allows
        # StartSession, the caller must name a document, and the document is authorized.
        context["ssm:SessionDocumentAccessCheck"] = "true" if p.get("DocumentName") else "false"
    if service == "iam" and op in ("AttachRolePolicy", "DetachRolePolicy", "AttachUserPolicy", "DetachUserPolicy"):
        context["iam:PolicyARN"] = p["PolicyArn"]
    if service == "iam" and op == "CreateServiceLinkedRole":
        context["iam:AWSServiceName"] = p["AWSServiceName"]
    return context


def _created_tags(target: Target, p: dict[str, Any]) -> dict[str, Any]:
    """The request-tag keys of one created resource (none for an existing one)."""
    return _tag_context(_request_tags(p, target.kind)) if target.tags is None else {}


def _implied(
    world: World, service: str, op: str, p: dict[str, Any], targets: list[Target], principal: Principal | None
) -> list[Request]:
    """The checks AWS makes for the caller besides the operation's own, each on the resource it concerns."""
    requests = []
    new = [t for t in targets if t.tags is None and _request_tags(p, t.kind)]
    base = _request_context(service, op, p, world)
    for action in sorted(implied_actions(service, op, p)):
        if action in (
            "ec2:CreateTags",
            "rds:AddTagsToResource",
            "iam:TagRole",
            "iam:TagInstanceProfile",
            "iam:TagUser",
            "iam:TagPolicy",
        ):
            extra = {"ec2:CreateAction": op} if action == "ec2:CreateTags" else {}
            requests += [Request(action, t.arn, {**base, **_created_tags(t, p), **extra}) for t in new]
        elif action == "iam:PassRole":
            if op == "RunInstances":
                _, roles = world.profile(p["IamInstanceProfile"]["Name"])
                passed = {"iam:PassedToService": "ec2.amazonaws.com"}
            else:  # AddRoleToInstanceProfile: the role going into the profile
                roles, passed = [p["RoleName"]], {}
            requests += [Request(action, world.role(name).arn, passed) for name in roles]
        elif action == "iam:CreateServiceLinkedRole":
            arn = world.iam_arn("role", "/aws-service-role/rds.amazonaws.com/", "AWSServiceRoleForRDS")
            requests.append(Request(action, arn, {"iam:AWSServiceName": "rds.amazonaws.com"}))
        elif action.startswith("secretsmanager:"):
            secret = world.arn("secretsmanager", f"secret:rds!cluster-{uuid.uuid4()}-AbCdEf")
            requests.append(Request(action, secret, {}))
        elif action == "kms:DescribeKey":
            requests.append(Request(action, world.arn("kms", "key/aws-secretsmanager"), {}))
        elif action in ("ssmmessages:OpenDataChannel", "ssm:ResumeSession"):
            # the session plugin, with the caller's credentials, on the session StartSession made
            starter = (principal.username or principal.userid or "") if principal else ""
            requests.append(Request(action, world.arn("ssm", f"session/{starter}-{SESSION_SUFFIX}"), {}))
        else:
            raise NotImplementedError(f"implied {action} of {service}:{op} is not modelled")
    return requests


def authorizations(
    world: World, service: str, op: str, params: dict[str, Any], principal: Principal | None = None
) -> list[Request]:
    """Every (action, resource, context) AWS authorizes for one call of `service`'s `op` with `params` made by
    `principal` (who it is matters only where a resource is named after its caller: a session)."""
    action = iam_action(service, op)
    targets = _targets(world, service, op, params)
    context = _request_context(service, op, params, world)
    requests = []
    for target in targets:
        keys = dict(context) | _created_tags(target, params)
        if target.tags:
            keys |= {f"aws:ResourceTag/{k}": v for k, v in target.tags.items()}
        keys |= target.extra
        if op in ("PutUserPermissionsBoundary", "PutRolePermissionsBoundary"):
            keys |= context  # the boundary being set is the key, not the one the user or role has now (IAM reference)
        requests.append(Request(action, target.arn, keys))
    return requests + _implied(world, service, op, params, targets, principal)


# ----- principals, read from the account -----


def _document(raw: Any) -> dict[str, Any]:
    return json.loads(unquote(raw)) if isinstance(raw, str) else raw


def managed_document(admin: Callable[[str], Any], arn: str) -> dict[str, Any]:
    iam = admin("iam")
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = _document(iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"])
    return {**document, "_name": arn.rsplit("/", 1)[-1]}


def _held(admin: Callable[[str], Any], kind: str, name: str) -> list[dict[str, Any]]:
    """The managed and inline policies of a user or a role (`kind` "User" or "Role")."""
    iam, key = admin("iam"), {f"{kind}Name": name}
    attached = getattr(iam, f"list_attached_{kind.lower()}_policies")(**key)["AttachedPolicies"]
    policies = [managed_document(admin, p["PolicyArn"]) for p in attached]
    for policy in getattr(iam, f"list_{kind.lower()}_policies")(**key)["PolicyNames"]:
        document = getattr(iam, f"get_{kind.lower()}_policy")(**key, PolicyName=policy)["PolicyDocument"]
        policies.append({**_document(document), "_name": policy})
    return policies


def _boundary(admin: Callable[[str], Any], entity: dict[str, Any]) -> dict[str, Any] | None:
    arn = (entity.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    return managed_document(admin, arn) if arn else None


def user_principal(admin: Callable[[str], Any], user_name: str) -> Principal:
    """A user as IAM sees it now: its attached and inline policies, its tags, its boundary (if any)."""
    user = admin("iam").get_user(UserName=user_name)["User"]
    return Principal(
        arn=user["Arn"], account=user["Arn"].split(":")[4], policies=_held(admin, "User", user_name),
        boundary=_boundary(admin, user), tags=_tags(admin("iam").list_user_tags(UserName=user_name)["Tags"]),
        username=user_name, userid=user["UserId"],
    )  # fmt: skip


def role_principal(admin: Callable[[str], Any], role_name: str) -> Principal:
    """A role's session as IAM sees it: the role's policies, its tags as principal tags, its boundary."""
    role = admin("iam").get_role(RoleName=role_name)["Role"]
    return Principal(
        arn=role["Arn"], account=role["Arn"].split(":")[4], policies=_held(admin, "Role", role_name),
        boundary=_boundary(admin, role), tags=_tags(role.get("Tags")), userid=f"{role['RoleId']}:i-0123456789abcdef0",
    )  # fmt: skip


# ----- enforcement -----


@dataclass
class Logged:
    """One decision the enforcer made."""

    operation: str
    request: Request
    decision: Decision


class StrictIam:
    """Denies what `principal()` may not do, before the request is sent; logs every decision."""

    def __init__(self, world: World, principal: Callable[[], Principal]) -> None:
        self.world = world
        self.principal = principal
        self.log: list[Logged] = []
        self._unique_id = f"strict-iam-{id(self)}"

    def decide(self, service: str, op: str, params: dict[str, Any]) -> list[Logged]:
        principal = self.principal()
        decided = [
            Logged(f"{service}:{op}", request, evaluate(principal, request))
            for request in authorizations(self.world, service, op, params, principal)
        ]
        self.log += decided
        return decided

    def _check(self, model: Any, params: dict[str, Any], context: dict[str, Any] | None = None, **_: Any) -> None:
        service = model.service_model.service_name
        if context is not None and params and "PathPrefix" in params:
            context["strict_iam_path_prefix"] = params["PathPrefix"]
        for logged in self.decide(service, model.name, params or {}):
            if not logged.decision.allowed:
                principal = self.principal()
                message = (
                    f"User: {principal.arn} is not authorized to perform: {logged.request.action} on resource: "
                    f"{logged.request.resource} because {logged.decision.reason}"
                )
                raise ClientError(
                    {"Error": {"Code": "AccessDenied", "Message": message},
                     "ResponseMetadata": {"HTTPStatusCode": 403}},
                    model.name,
                )  # fmt: skip

    @staticmethod
    def _honour_path_prefix(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """moto ignores ListInstanceProfiles' PathPrefix; AWS honours it (IAM API reference), and a learner may
        read only her own profiles, so the listing must not offer her everyone's."""
        prefix = context.get("strict_iam_path_prefix")
        if prefix and "InstanceProfiles" in parsed:
            parsed["InstanceProfiles"] = [p for p in parsed["InstanceProfiles"] if p["Path"].startswith(prefix)]

    def _register(self, events: Any) -> None:
        events.register("before-parameter-build", self._check, unique_id=self._unique_id)
        events.register(
            "after-call.iam.ListInstanceProfiles", self._honour_path_prefix, unique_id=f"{self._unique_id}-path"
        )

    def _unregister(self, events: Any) -> None:
        events.unregister("before-parameter-build", unique_id=self._unique_id)
        events.unregister("after-call.iam.ListInstanceProfiles", unique_id=f"{self._unique_id}-path")

    @contextlib.contextmanager
    def enforcing(self, backend: Any) -> Iterator[StrictIam]:
        """Within the block every request made through `backend` is checked first (as ActionRecorder watches)."""
        original = backend.client
        attached: dict[int, Any] = {}

        def client(service: str) -> Any:
            made = original(service)
            if id(made) not in attached:
                self._register(made.meta.events)
                attached[id(made)] = made
            return made

        events = backend.session().events
        backend.client = client
        self._register(events)
        try:
            yield self
        finally:
            del backend.client
            self._unregister(events)
            for made in attached.values():
                self._unregister(made.meta.events)
