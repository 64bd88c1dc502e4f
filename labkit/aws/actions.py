"""Which IAM actions labkit needs: record them from a run, read them from a policy, compare the two.

A botocore `before-parameter-build` hook names every request as the IAM action it needs (`ec2:RunInstances`),
plus the actions AWS also checks on the caller's behalf for some calls (`iam:PassRole` for an instance with
a profile, `ec2:CreateTags` for tags given at creation, what a managed master password needs), modelled from
the AWS documentation cited beside each rule, not from what moto checks. The policies in `policies/` are checked
against such a recording (tests/unit/test_policies.py), so a call added to labkit cannot silently fail with
AccessDenied in a learner's account, and a policy never grants what labkit does not use.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from labkit.aws.backend import Backend

# boto3 service name -> IAM action prefix, where the two differ (every other service uses its own name).
IAM_PREFIXES = {
    "resourcegroupstaggingapi": "tag",
    "service-quotas": "servicequotas",
}

# Create calls whose Tags/TagSpecifications AWS authorizes as a separate tagging action of the caller.
_TAG_ON_CREATE = {"ec2": "ec2:CreateTags", "rds": "rds:AddTagsToResource"}
# IAM User Guide, "Permissions required for tagging IAM resources": tags in a create call need the tag action.
_IAM_TAG_ON_CREATE = {
    "CreateRole": "iam:TagRole",
    "CreateInstanceProfile": "iam:TagInstanceProfile",
    "CreateUser": "iam:TagUser",
    "CreatePolicy": "iam:TagPolicy",
}
# ManageMasterUserPassword: RDS makes the cluster's master-user secret with the caller's permissions. The Aurora
# User Guide, "Password management with Amazon Aurora and AWS Secrets Manager" (Permissions required for Secrets
# Manager integration), lists exactly these for whoever creates or modifies a cluster that way.
_MANAGED_SECRET = ("kms:DescribeKey", "secretsmanager:CreateSecret", "secretsmanager:TagResource")
# IAM API reference, AddRoleToInstanceProfile: "The caller of this operation must be granted the PassRole
# permission on the IAM role"; RunInstances with an instance profile checks iam:PassRole on its role too
# (EC2 User Guide, "IAM roles for Amazon EC2": permissions to launch an instance with a role).
_PASSES_A_ROLE = {("ec2", "RunInstances"): "IamInstanceProfile", ("iam", "AddRoleToInstanceProfile"): "RoleName"}
# What AWS's session-manager-plugin does with the caller's credentials once StartSession has answered: it opens
# the session's data channel over a SigV4-signed websocket (ssmmessages:OpenDataChannel; the plugin's
# src/sessionmanagerplugin/session/sessionhandler.go, OpenDataChannel), and after a network error it calls
# ResumeSession for a new token (ResumeSessionHandler). The Session Manager User Guide's end-user sample policies
# ("Sample IAM policies for Session Manager") grant ssmmessages:OpenDataChannel on `session/${aws:userid}-*`.
SESSION_PLUGIN_ACTIONS = ("ssmmessages:OpenDataChannel", "ssm:ResumeSession")


def iam_action(service: str, operation: str) -> str:
    """The IAM action an API operation needs, e.g. ("resourcegroupstaggingapi", "GetResources") -> tag:GetResources."""
    return f"{IAM_PREFIXES.get(service, service)}:{operation}"


def implied_actions(service: str, operation: str, params: dict[str, Any]) -> set[str]:
    """Actions AWS authorizes for the caller besides the operation's own (tag on create, pass a role)."""
    implied: set[str] = set()
    if operation.startswith(("Create", "RunInstances", "Authorize")):
        if service == "ec2" and params.get("TagSpecifications"):
            implied.add(_TAG_ON_CREATE["ec2"])
        if service == "rds" and params.get("Tags"):
            implied.add(_TAG_ON_CREATE["rds"])
        if service == "iam" and params.get("Tags") and operation in _IAM_TAG_ON_CREATE:
            implied.add(_IAM_TAG_ON_CREATE[operation])
    passes = _PASSES_A_ROLE.get((service, operation))
    if passes and params.get(passes):
        implied.add("iam:PassRole")
    if service == "ssm" and operation == "StartSession":
        implied.update(SESSION_PLUGIN_ACTIONS)
    if service == "rds" and operation == "CreateDBCluster":
        # RDS User Guide, "Using service-linked roles for Amazon RDS": the first cluster of an account creates
        # AWSServiceRoleForRDS with the caller's iam:CreateServiceLinkedRole.
        implied.add("iam:CreateServiceLinkedRole")
    if (
        service == "rds"
        and operation in ("CreateDBCluster", "ModifyDBCluster")
        and params.get("ManageMasterUserPassword")
    ):
        implied.update(_MANAGED_SECRET)
    return implied


class ActionRecorder:
    """Collects the IAM actions of every request made through the clients it is attached to (thread-safe)."""

    def __init__(self) -> None:
        self.called: set[str] = set()  # the operations' own actions
        self.implied: set[str] = set()  # actions AWS checks on the caller's behalf
        self._lock = threading.Lock()
        self._unique_id = f"labkit-actions-{id(self)}"

    @property
    def actions(self) -> set[str]:
        """Every action the recorded requests need."""
        return self.called | self.implied

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        with self._lock:
            self.called.add(iam_action(service, model.name))
            self.implied |= implied_actions(service, model.name, params or {})

    def attach(self, client: Any) -> None:
        """Record the requests of one botocore client (idempotent). The hook sees the caller's parameters."""
        client.meta.events.register("before-parameter-build", self._record, unique_id=self._unique_id)

    def detach(self, client: Any) -> None:
        client.meta.events.unregister("before-parameter-build", unique_id=self._unique_id)

    @contextlib.contextmanager
    def watching(self, backend: Backend) -> Iterator[ActionRecorder]:
        """Within the block, record every request made through `backend`: its cached clients from
        `backend.client(...)`, and clients made straight from its session when it keeps one session."""
        original = backend.client
        attached: dict[int, Any] = {}
        events = backend.session().events

        def client(service: str) -> Any:
            made = original(service)
            if id(made) not in attached:
                self.attach(made)
                attached[id(made)] = made
            return made

        backend.client = client  # type: ignore[method-assign]
        events.register("before-parameter-build", self._record, unique_id=self._unique_id)
        try:
            yield self
        finally:
            del backend.client  # the instance attribute goes; the class's method is back
            events.unregister("before-parameter-build", unique_id=self._unique_id)
            for made in attached.values():
                self.detach(made)


@contextlib.contextmanager
def record_actions(backend: Backend) -> Iterator[ActionRecorder]:
    """Record the IAM actions of every AWS request made through `backend` within the block."""
    with ActionRecorder().watching(backend) as recorder:
        yield recorder


def _as_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def policy_actions(document: dict[str, Any]) -> set[str]:
    """The actions an IAM policy document allows (its Allow statements' Action entries, as written)."""
    return {
        action
        for statement in _as_list_of_statements(document)
        if statement.get("Effect") == "Allow"
        for action in _as_list(statement.get("Action"))
    }


def _as_list_of_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


# Every IAM action a whole workbook needs (notebooks 00 to 07, the preflight included), with the actions AWS checks
# on its behalf (implied_actions) and those of the session plugin: what tests/unit/test_policies.py records from
# a whole run under the learner policies, plus the calls moto cannot serve (its NOT_RECORDED_ON_MOTO), each
# checked there against this list. The preflight simulates exactly these (labkit.lab.permissions).
WORKBOOK_ACTIONS = frozenset(
    {
        "ec2:AssociateRouteTable", "ec2:AttachInternetGateway", "ec2:AuthorizeSecurityGroupEgress",
        "ec2:AuthorizeSecurityGroupIngress", "ec2:CreateInternetGateway", "ec2:CreateKeyPair", "ec2:CreateRoute",
        "ec2:CreateRouteTable", "ec2:CreateSecurityGroup", "ec2:CreateSubnet", "ec2:CreateTags", "ec2:CreateVpc",
        "ec2:DeleteInternetGateway", "ec2:DeleteKeyPair", "ec2:DeleteNetworkInterface", "ec2:DeleteRouteTable",
        "ec2:DeleteSecurityGroup", "ec2:DeleteSubnet", "ec2:DeleteVpc", "ec2:DescribeAccountAttributes",
        "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTypeOfferings",
        "ec2:DescribeInstanceTypes", "ec2:DescribeInstances", "ec2:DescribeInternetGateways", "ec2:DescribeKeyPairs",
        "ec2:DescribeNetworkAcls", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRegions", "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroupRules", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVolumes",
        "ec2:DescribeVpcAttribute", "ec2:DescribeVpcEndpoints", "ec2:DescribeVpcPeeringConnections",
        "ec2:DescribeVpcs", "ec2:DetachInternetGateway", "ec2:DisassociateRouteTable", "ec2:ModifySubnetAttribute",
        "ec2:ModifyVpcAttribute", "ec2:ReplaceRoute", "ec2:RevokeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupIngress", "ec2:RunInstances", "ec2:TerminateInstances",
        "iam:AddRoleToInstanceProfile", "iam:AttachRolePolicy", "iam:CreateInstanceProfile", "iam:CreateRole",
        "iam:CreateServiceLinkedRole", "iam:DeleteInstanceProfile", "iam:DeleteRole", "iam:DeleteRolePolicy",
        "iam:DetachRolePolicy", "iam:GetInstanceProfile", "iam:GetPolicy", "iam:GetRole", "iam:GetRolePolicy",
        "iam:ListAttachedRolePolicies", "iam:ListInstanceProfiles", "iam:ListInstanceProfilesForRole",
        "iam:ListRolePolicies", "iam:ListRoles", "iam:ListUserTags", "iam:PassRole", "iam:PutRolePolicy",
        "iam:RemoveRoleFromInstanceProfile", "iam:SimulatePrincipalPolicy", "iam:TagInstanceProfile", "iam:TagRole",
        "kms:DescribeKey",
        "pricing:GetProducts",
        "rds:AddTagsToResource", "rds:CreateDBCluster", "rds:CreateDBClusterParameterGroup", "rds:CreateDBInstance",
        "rds:CreateDBSubnetGroup", "rds:DeleteDBCluster", "rds:DeleteDBClusterParameterGroup",
        "rds:DeleteDBClusterSnapshot", "rds:DeleteDBInstance", "rds:DeleteDBSubnetGroup",
        "rds:DescribeAccountAttributes", "rds:DescribeDBClusterParameterGroups", "rds:DescribeDBClusterParameters",
        "rds:DescribeDBClusterSnapshots", "rds:DescribeDBClusters",
        "rds:DescribeDBEngineVersions", "rds:DescribeDBInstances", "rds:DescribeDBSubnetGroups",
        "rds:DescribeOrderableDBInstanceOptions", "rds:FailoverDBCluster", "rds:ListTagsForResource",
        "rds:ModifyDBCluster", "rds:ModifyDBClusterParameterGroup", "rds:RebootDBInstance",
        "secretsmanager:CreateSecret", "secretsmanager:GetSecretValue", "secretsmanager:ListSecrets",
        "secretsmanager:TagResource",
        "servicequotas:GetAWSDefaultServiceQuota", "servicequotas:GetServiceQuota",
        "ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation", "ssm:GetParameter", "ssm:ResumeSession",
        "ssm:SendCommand", "ssm:StartSession", "ssm:TerminateSession",
        "ssmmessages:OpenDataChannel",
        "sts:GetCallerIdentity",
    }
)  # fmt: skip

# Of those, the ones the workbook does without when AWS denies them: quotas then come from AWS's documented defaults
# (a warn in the preflight), prices from the bundled table, the caller's tags from the lab config. A policy lacking
# one of them is a warn, never a fail.
OPTIONAL_ACTIONS = frozenset(
    {
        "servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota", "ec2:DescribeAccountAttributes",
        "rds:DescribeAccountAttributes", "pricing:GetProducts", "iam:ListUserTags",
    }
)  # fmt: skip
