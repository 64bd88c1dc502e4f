"""Database: the DB subnet group, the Aurora cluster (of the lab's engine), its writer and its readers.

The cluster is encrypted, keeps one day of backups, lets RDS manage the master password in Secrets Manager
(labkit reads it from the secret only to connect, and never shows it), and is reachable only from inside the VPC through the `db` security group.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from labkit.aws.errors import error_code
from labkit.aws.tags import NODE_CLUSTER, NODE_DB_SUBNET_GROUP, NODE_DB_SUBNETS, NODE_SG_DB
from labkit.engines import engine_of
from labkit.errors import LabkitError
from labkit.lab.engine import NO_EXTENDED_SUPPORT, EngineChoice, choose_engine
from labkit.lab.resources.base import Change, Found, LabContext, Resource, ResourceType
from labkit.lab.resources.registry import LAB_ENGINE, Describe, PriceRow, TaggedCreate, register

NODE_CLUSTER_PARAMETERS = "cluster-parameters"  # the cluster parameter group (parameters.py), made before the cluster

MASTER_USERNAME = "admin"
DATABASE_NAME = "shop"  # the lab schema's database, created with the cluster as Aurora does
SERVERLESS_CLASS = "db.serverless"
NODE_CLUSTER_SNAPSHOTS = "cluster-snapshots"  # not made by apply; destroy removes them after the cluster


def _rds(ctx: LabContext) -> Any:
    return ctx.client("rds")


def engine_choice(ctx: LabContext) -> EngineChoice:
    """The engine version and orderable class for a new cluster, resolved once per plan or apply."""
    return ctx.cached("engine", lambda: choose_engine(ctx.backend, ctx.config))


def cluster_arn(ctx: LabContext) -> str:
    config = ctx.config
    return f"arn:{config.partition}:rds:{config.region}:{ctx.account_id()}:cluster:{ctx.name(NODE_CLUSTER)}"


@register("db-subnet-group")
class DbSubnetGroup(Resource):
    kind = "DB subnet group"
    # describe_db_subnet_groups returns no tags, and the tagging API does not list subnet groups.
    describe = Describe(
        "rds", "describe_db_subnet_groups", "DBSubnetGroups", "DBSubnetGroupName", tags="", state="SubnetGroupStatus"
    )
    stage = "database"
    tagged_create = TaggedCreate("CreateDBSubnetGroup", "Tags")
    deleted_after = ("db-cluster", "db-instance")  # InvalidDBSubnetGroupStateFault while a database uses it

    @classmethod
    def keep(cls, item: dict[str, Any]) -> bool:
        return item["DBSubnetGroupName"] != "default"

    @classmethod
    def may_be_ours(cls, ctx: LabContext, item: dict[str, Any]) -> bool:
        return item["DBSubnetGroupName"].startswith(ctx.name_prefix)  # before one tag call per group

    @classmethod
    def tags_of(cls, client: Any, item: dict[str, Any]) -> list[dict[str, str]] | None:
        return client.list_tags_for_resource(ResourceName=item["DBSubnetGroupArn"])["TagList"]

    def create(self, ctx: LabContext) -> str:
        return _rds(ctx).create_db_subnet_group(
            DBSubnetGroupName=ctx.name(self.node),
            DBSubnetGroupDescription="labkit: the database subnets, in two availability zones",
            SubnetIds=[ctx.id_of(node) for node in NODE_DB_SUBNETS],
            Tags=ctx.tags(self.node),
        )["DBSubnetGroup"]["DBSubnetGroupName"]

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        ctx.retry(lambda: _rds(ctx).delete_db_subnet_group(DBSubnetGroupName=resource_id), self.node)


class _NotWhileDeleting(Resource):
    """An RDS resource that cannot be reused while a delete of the same name is still under way."""

    def find_all(self, ctx: LabContext) -> list[Found]:
        found = super().find_all(ctx)
        for item in found:
            if item.state == "deleting":
                raise LabkitError(
                    f"{item.kind} {item.resource_id} is still being deleted",
                    field=item.node,
                    fix="wait until `labkit status` no longer lists it, then run apply again",
                )
        return found


@register("db-cluster")
class Cluster(_NotWhileDeleting):
    kind = "Aurora cluster"
    describe = Describe(
        "rds", "describe_db_clusters", "DBClusters", "DBClusterIdentifier", tags="TagList", state="Status",
        detail="Endpoint", created="ClusterCreateTime",
    )  # fmt: skip
    stage = "database"
    tagged_create = TaggedCreate("CreateDBCluster", "Tags")
    deleted_after = ("db-instance",)  # a cluster goes after its instances
    companions = ("cluster-secret",)

    def create(self, ctx: LabContext) -> str:
        config = ctx.config
        params: dict[str, Any] = {
            "DBClusterIdentifier": ctx.name(self.node),
            "Engine": engine_of(config).name,
            "EngineVersion": engine_choice(ctx).version,
            "EngineLifecycleSupport": NO_EXTENDED_SUPPORT,  # fail, never enrol in paid Extended Support
            "MasterUsername": MASTER_USERNAME,
            "DatabaseName": DATABASE_NAME,
            "ManageMasterUserPassword": True,
            "DBSubnetGroupName": ctx.id_of(NODE_DB_SUBNET_GROUP),
            "DBClusterParameterGroupName": ctx.id_of(NODE_CLUSTER_PARAMETERS),  # TLS required (parameters.py)
            "VpcSecurityGroupIds": [ctx.id_of(NODE_SG_DB)],
            "StorageEncrypted": True,
            "BackupRetentionPeriod": 1,
            "DeletionProtection": config.deletion_protection,
            "CopyTagsToSnapshot": True,
            "Tags": ctx.tags(self.node),
        }
        if config.db_instance_class == SERVERLESS_CLASS:
            params["ServerlessV2ScalingConfiguration"] = {"MinCapacity": 0.5, "MaxCapacity": 2}
        return _rds(ctx).create_db_cluster(**params)["DBCluster"]["DBClusterIdentifier"]

    def _describe(self, ctx: LabContext, identifier: str) -> dict[str, Any]:
        return _rds(ctx).describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("rds", "db_cluster_available", self.node, DBClusterIdentifier=resource_id)

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        cluster = self._describe(ctx, resource_id)
        modify = partial(_rds(ctx).modify_db_cluster, DBClusterIdentifier=resource_id, ApplyImmediately=True)
        changes = []
        wanted = ctx.config.deletion_protection
        if bool(cluster.get("DeletionProtection")) != wanted:
            changes.append(
                Change(
                    f"turn deletion protection {'on' if wanted else 'off'}", partial(modify, DeletionProtection=wanted)
                )
            )
        group = ctx.ids.get(NODE_CLUSTER_PARAMETERS)
        if group and str(cluster.get("DBClusterParameterGroup", "")).lower() != group.lower():
            # a cluster made before the lab required TLS; on Aurora its instances take the new group's settings at
            # their next reboot (status pending-reboot), the sandbox's servers at once
            use = partial(modify, DBClusterParameterGroupName=group)
            changes.append(Change(f"use the cluster parameter group {group} (TLS required)", use))
        return changes

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        """Deletion protection off first, then delete without a final snapshot (a lab keeps no data)."""
        if self._describe(ctx, resource_id).get("DeletionProtection"):
            _rds(ctx).modify_db_cluster(
                DBClusterIdentifier=resource_id, DeletionProtection=False, ApplyImmediately=True
            )
        ctx.retry(
            lambda: _rds(ctx).delete_db_cluster(DBClusterIdentifier=resource_id, SkipFinalSnapshot=True),
            self.node,
        )
        ctx.wait("rds", "db_cluster_deleted", self.node, DBClusterIdentifier=resource_id)


@register("db-instance")
class DbInstance(_NotWhileDeleting):
    """An instance of the cluster. The first one created (the `db-1` node) becomes the writer;
    a failover makes another one the writer, so no name says a role."""

    kind = "Aurora instance"
    describe = Describe(
        "rds", "describe_db_instances", "DBInstances", "DBInstanceIdentifier", tags="TagList",
        state="DBInstanceStatus", detail="Endpoint.Address", created="InstanceCreateTime", size="DBInstanceClass",
    )  # fmt: skip
    stage = "database"
    tagged_create = TaggedCreate("CreateDBInstance", "Tags")
    prices = (
        PriceRow("Aurora writer", LAB_ENGINE, size_setting="db_instance_class", per="first"),
        PriceRow("Aurora readers", LAB_ENGINE, size_setting="db_instance_class", per="others"),
    )

    def __init__(self, node: str, depends_on: tuple[str, ...], *, promotion_tier: int) -> None:
        super().__init__(node, depends_on)
        self.promotion_tier = promotion_tier

    @classmethod
    def kind_of(cls, item: dict[str, Any]) -> str:
        return cls.kind if item.get("DBClusterIdentifier") else "RDS instance"  # not in a cluster: not Aurora

    def create(self, ctx: LabContext) -> str:
        return _rds(ctx).create_db_instance(
            DBInstanceIdentifier=ctx.name(self.node),
            DBClusterIdentifier=ctx.id_of(NODE_CLUSTER),
            Engine=engine_of(ctx.config).name,
            DBInstanceClass=ctx.config.db_instance_class,
            PubliclyAccessible=False,
            PromotionTier=self.promotion_tier,
            Tags=ctx.tags(self.node),
        )["DBInstance"]["DBInstanceIdentifier"]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("rds", "db_instance_available", self.node, DBInstanceIdentifier=resource_id)

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        ctx.retry(lambda: _rds(ctx).delete_db_instance(DBInstanceIdentifier=resource_id), self.node)
        ctx.wait("rds", "db_instance_deleted", self.node, DBInstanceIdentifier=resource_id)


@register("cluster-snapshots")
class ClusterSnapshots(Resource):
    """Snapshots of the cluster, which carry its tags (CopyTagsToSnapshot) and can outlive it."""

    kind = "Cluster snapshot"
    describe = Describe(
        "rds", "describe_db_cluster_snapshots", "DBClusterSnapshots", "DBClusterSnapshotIdentifier", tags="TagList",
        state="Status", detail="SnapshotType", created="SnapshotCreateTime",
    )  # fmt: skip
    cleanup_node = NODE_CLUSTER_SNAPSHOTS
    deleted_after = ("db-cluster",)  # snapshots outlive their cluster: they go after it

    def create(self, ctx: LabContext) -> str:
        raise LabkitError("labkit never takes snapshots", field=self.node)

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        try:
            _rds(ctx).delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=resource_id)
        except ClientError as exc:  # AWS removes automated snapshots itself, with the cluster
            if error_code(exc) != "InvalidDBClusterSnapshotStateFault":
                raise


@register("cluster-secret")
class ClusterSecret(ResourceType):
    """The master-password secret RDS made for the cluster; RDS deletes it with the cluster. Listed for verify."""

    kind = "Secrets Manager secret"
    describe = Describe("secretsmanager", "list_secrets", "SecretList", "Name", state="")
    lab_tagged = False  # RDS tags it with its cluster's ARN, not with the lab tags
    prices = (PriceRow("Secrets Manager secret (master password)", "secret", size="secret"),)

    @classmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        """The secret whose `aws:rds:primaryDBClusterArn` tag names this lab's cluster."""
        owner = {"Key": "aws:rds:primaryDBClusterArn", "Value": cluster_arn(ctx)}
        secrets = cls.all_items(ctx.client("secretsmanager"))
        return [
            Found(cls.kind, NODE_CLUSTER, cls.id_of(secret), "exists", "master password")
            for secret in secrets
            if owner in secret.get("Tags", [])
        ]
