"""IAM: the instance's role (trusted by EC2, with AmazonSSMManagedInstanceCore) and its instance profile.

The role also carries one inline policy for the web app on the instance: read this lab's cluster
description and the cluster's managed master secret, nothing else (the secret is matched by the tag RDS
puts on it, `aws:rds:primaryDBClusterArn`, so no other secret of the account is readable). Both live under an IAM path of their own (/labkit/LAB/LEARNER/), so a listing by path finds exactly this
learner's roles; their tags are checked as well before anything is touched.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from functools import partial
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from labkit.aws.errors import error_code, is_not_found
from labkit.aws.tags import NODE_CLUSTER, NODE_IAM_ROLE
from labkit.lab.resources.base import Change, LabContext, Resource
from labkit.lab.resources.registry import Describe, TaggedCreate, register

SSM_POLICY_NAME = "AmazonSSMManagedInstanceCore"
# In a class account the instructor's permissions boundary caps every role a learner creates, and the learner
# policies allow CreateRole only with it (labkit/data/policies/learner-compute.json, `labkit class setup`).
CLASS_BOUNDARY = "policy/labkit/labkit-instance-boundary"
APP_POLICY_NAME = "labkit-app-reads-its-cluster"
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


def _iam(ctx: LabContext) -> Any:
    return ctx.client("iam")


def ssm_policy_arn(ctx: LabContext) -> str:
    return f"arn:{ctx.config.partition}:iam::aws:policy/{SSM_POLICY_NAME}"


def app_policy(ctx: LabContext) -> dict[str, Any]:
    """What the web app on the instance may do: describe its cluster, read that cluster's managed secret."""
    partition, region, account = ctx.config.partition, ctx.config.region, ctx.account_id()
    cluster_arn = f"arn:{partition}:rds:{region}:{account}:cluster:{ctx.name(NODE_CLUSTER)}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DescribeTheLabCluster", "Effect": "Allow", "Action": "rds:DescribeDBClusters",
             "Resource": cluster_arn},
            {
                "Sid": "ReadTheLabClusterSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"arn:{partition}:secretsmanager:{region}:{account}:secret:rds!cluster-*",
                "Condition": {"StringEquals": {"aws:ResourceTag/aws:rds:primaryDBClusterArn": cluster_arn}},
            },
        ],
    }  # fmt: skip


def class_boundary(ctx: LabContext) -> str | None:
    """The class's permissions boundary when the account has one (a class account), else None (a learner's own
    account): roles then carry it, as the learner policies require."""
    arn = f"arn:{ctx.config.partition}:iam::{ctx.account_id()}:{CLASS_BOUNDARY}"
    try:
        _iam(ctx).get_policy(PolicyArn=arn)
    except ClientError as exc:
        if is_not_found(exc) or error_code(exc) in ("AccessDenied", "AccessDeniedException"):
            return None
        raise
    return arn


def _current_app_policy(ctx: LabContext, role: str) -> dict[str, Any] | None:
    if APP_POLICY_NAME not in _iam(ctx).list_role_policies(RoleName=role)["PolicyNames"]:
        return None
    document = _iam(ctx).get_role_policy(RoleName=role, PolicyName=APP_POLICY_NAME)["PolicyDocument"]
    return json.loads(unquote(document)) if isinstance(document, str) else document


class _UnderLabkitPath(Resource):
    """An IAM type labkit keeps under /labkit/LAB/LEARNER/: listed by that path, its tags read one by one."""

    @classmethod
    def lab_params(cls, ctx: LabContext) -> dict[str, Any]:
        return {"PathPrefix": ctx.iam_path}

    @classmethod
    def tags_of(cls, client: Any, item: dict[str, Any]) -> list[dict[str, str]] | None:
        """The listing omits tags; they are read only under /labkit/, where labkit puts what it makes. One deleted
        between the listing and the read (another learner's reset, a class scan during a destroy) is gone: None."""
        if not item["Path"].startswith("/labkit/"):
            return None
        try:
            return cls.read_tags(client, item)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    @classmethod
    @abstractmethod
    def read_tags(cls, client: Any, item: dict[str, Any]) -> list[dict[str, str]] | None:
        """The item's tags, read with the type's own get call."""


@register("iam-role")
class Role(_UnderLabkitPath):
    kind = "IAM role"
    describe = Describe("iam", "list_roles", "Roles", "RoleName", tags="", state="", detail="Arn", created="CreateDate")
    stage = "compute"
    tagged_create = TaggedCreate("CreateRole", "Tags")
    deleted_after = ("instance-profile",)  # DeleteConflict while the role is in a profile

    @classmethod
    def read_tags(cls, client: Any, item: dict[str, Any]) -> list[dict[str, str]] | None:
        return client.get_role(RoleName=item["RoleName"])["Role"].get("Tags")

    def create(self, ctx: LabContext) -> str:
        return _iam(ctx).create_role(
            RoleName=ctx.name(self.node),
            Path=ctx.iam_path,
            AssumeRolePolicyDocument=TRUST_POLICY,
            Description="labkit: lets the lab instance register with Systems Manager",
            Tags=ctx.tags(self.node),
            **({"PermissionsBoundary": boundary} if (boundary := class_boundary(ctx)) else {}),
        )["Role"]["RoleName"]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("iam", "role_exists", self.node, RoleName=resource_id)

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        changes = []
        attached = _iam(ctx).list_attached_role_policies(RoleName=resource_id)["AttachedPolicies"]
        if ssm_policy_arn(ctx) not in [p["PolicyArn"] for p in attached]:
            attach = partial(_iam(ctx).attach_role_policy, RoleName=resource_id, PolicyArn=ssm_policy_arn(ctx))
            changes.append(Change(f"attach {SSM_POLICY_NAME}", attach))
        wanted = app_policy(ctx)
        if _current_app_policy(ctx, resource_id) != wanted:
            document = json.dumps(wanted)
            put = partial(
                _iam(ctx).put_role_policy, RoleName=resource_id, PolicyName=APP_POLICY_NAME, PolicyDocument=document
            )
            changes.append(Change(f"put the inline policy {APP_POLICY_NAME}", put))
        return changes

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        """IAM's order: out of every instance profile, policies detached, inline policies deleted, then the role."""
        iam = _iam(ctx)
        for profile in iam.list_instance_profiles_for_role(RoleName=resource_id)["InstanceProfiles"]:
            iam.remove_role_from_instance_profile(
                InstanceProfileName=profile["InstanceProfileName"], RoleName=resource_id
            )
        for policy in iam.list_attached_role_policies(RoleName=resource_id)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=resource_id, PolicyArn=policy["PolicyArn"])
        for name in iam.list_role_policies(RoleName=resource_id)["PolicyNames"]:
            iam.delete_role_policy(RoleName=resource_id, PolicyName=name)
        ctx.retry(lambda: iam.delete_role(RoleName=resource_id), self.node)


@register("instance-profile")
class InstanceProfile(_UnderLabkitPath):
    kind = "IAM instance profile"
    describe = Describe(
        "iam", "list_instance_profiles", "InstanceProfiles", "InstanceProfileName", tags="", state="", detail="Arn",
        created="CreateDate",
    )  # fmt: skip
    stage = "compute"
    tagged_create = TaggedCreate("CreateInstanceProfile", "Tags")

    @classmethod
    def read_tags(cls, client: Any, item: dict[str, Any]) -> list[dict[str, str]] | None:
        profile = client.get_instance_profile(InstanceProfileName=item["InstanceProfileName"])["InstanceProfile"]
        return profile.get("Tags")

    def create(self, ctx: LabContext) -> str:
        return _iam(ctx).create_instance_profile(
            InstanceProfileName=ctx.name(self.node), Path=ctx.iam_path, Tags=ctx.tags(self.node)
        )["InstanceProfile"]["InstanceProfileName"]

    def _roles(self, ctx: LabContext, name: str) -> list[str]:
        profile = _iam(ctx).get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        return [role["RoleName"] for role in profile.get("Roles", [])]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("iam", "instance_profile_exists", self.node, InstanceProfileName=resource_id)

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        role = ctx.ids.get(NODE_IAM_ROLE)
        if role is not None and role in self._roles(ctx, resource_id):
            return []

        def add_role() -> None:
            _iam(ctx).add_role_to_instance_profile(InstanceProfileName=resource_id, RoleName=ctx.id_of(NODE_IAM_ROLE))

        return [Change("add the role", add_role)]

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        for role in self._roles(ctx, resource_id):
            _iam(ctx).remove_role_from_instance_profile(InstanceProfileName=resource_id, RoleName=role)
        ctx.retry(lambda: _iam(ctx).delete_instance_profile(InstanceProfileName=resource_id), self.node)
