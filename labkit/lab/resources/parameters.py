"""The cluster parameter group: the lab's cluster refuses clients that do not encrypt.

Aurora takes server settings from a DB cluster parameter group; the default group (`default.<family>`) cannot
be changed, so a lab that wants a setting makes its own group, of the family of the cluster's version, sets the
parameter, and names the group when it creates the cluster (Aurora User Guide, "Working with DB cluster parameter
groups"). The lab's group requires TLS: `require_secure_transport = ON` on Aurora MySQL, `rds.force_ssl = 1` on
Aurora PostgreSQL (the engine description says which, labkit.engines). Both are dynamic: a change applies at once,
no reboot. A group in use cannot be deleted (InvalidDBParameterGroupState), so destroy deletes it after the
cluster.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from labkit.aws.errors import RETRYABLE_CODES, THROTTLING_CODES, error_code
from labkit.engines import engine_of
from labkit.lab.resources.base import Change, LabContext, Resource
from labkit.lab.resources.database import engine_choice
from labkit.lab.resources.registry import Describe, TaggedCreate, register

IN_USE = "InvalidDBParameterGroupState"  # deleting a group a cluster still uses


def _rds(ctx: LabContext) -> Any:
    return ctx.client("rds")


def wanted_parameters(ctx: LabContext) -> list[dict[str, str]]:
    """The parameters the lab's group sets: its engine's TLS requirement, applied at once (it is dynamic)."""
    tls = engine_of(ctx.config).tls
    return [{"ParameterName": tls.parameter, "ParameterValue": tls.required, "ApplyMethod": "immediate"}]


def family(ctx: LabContext) -> str:
    """The parameter group family of the version the cluster gets (the engine's catalog says which)."""
    return engine_of(ctx.config).catalog.family_of(engine_choice(ctx).version)[0]


@register("db-cluster-parameter-group")
class ClusterParameterGroup(Resource):
    kind = "DB cluster parameter group"
    # describe_db_cluster_parameter_groups returns no tags (list_tags_for_resource reads them) and no state.
    describe = Describe(
        "rds", "describe_db_cluster_parameter_groups", "DBClusterParameterGroups", "DBClusterParameterGroupName",
        tags="", state="", detail="DBParameterGroupFamily",
    )  # fmt: skip
    stage = "database"
    tagged_create = TaggedCreate("CreateDBClusterParameterGroup", "Tags")
    deleted_after = ("db-cluster",)  # InvalidDBParameterGroupState while a cluster uses it

    @classmethod
    def keep(cls, item: dict[str, Any]) -> bool:
        return not item["DBClusterParameterGroupName"].startswith("default.")  # AWS's own, never the lab's

    @classmethod
    def may_be_ours(cls, ctx: LabContext, item: dict[str, Any]) -> bool:
        # RDS keeps parameter group names in lower case
        return item["DBClusterParameterGroupName"].startswith(ctx.name_prefix.lower())

    @classmethod
    def tags_of(cls, client: Any, item: dict[str, Any]) -> list[dict[str, str]] | None:
        return client.list_tags_for_resource(ResourceName=item["DBClusterParameterGroupArn"])["TagList"]

    def create(self, ctx: LabContext) -> str:
        name = _rds(ctx).create_db_cluster_parameter_group(
            DBClusterParameterGroupName=ctx.name(self.node),
            DBParameterGroupFamily=family(ctx),
            Description="labkit: the lab's cluster settings (TLS required)",
            Tags=ctx.tags(self.node),
        )["DBClusterParameterGroup"]["DBClusterParameterGroupName"]
        self._set(ctx, name)
        return str(name)

    def _set(self, ctx: LabContext, name: str) -> None:
        _rds(ctx).modify_db_cluster_parameter_group(DBClusterParameterGroupName=name, Parameters=wanted_parameters(ctx))

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        """A group whose TLS parameter was changed (or a create that failed before setting it) is set again."""
        pages = (
            _rds(ctx)
            .get_paginator("describe_db_cluster_parameters")
            .paginate(DBClusterParameterGroupName=resource_id, Source="user")
        )
        current = {p["ParameterName"]: str(p.get("ParameterValue", "")) for page in pages for p in page["Parameters"]}
        missing = [
            p for p in wanted_parameters(ctx) if current.get(p["ParameterName"], "").upper() != p["ParameterValue"]
        ]
        if not missing:
            return []
        said = ", ".join(f"{p['ParameterName']} = {p['ParameterValue']}" for p in missing)
        return [Change(f"set {said} (require TLS)", partial(self._set, ctx, resource_id))]

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        """Deleted after the cluster; RDS may still count it in use for a moment after the cluster went."""
        ctx.retry(
            lambda: _rds(ctx).delete_db_cluster_parameter_group(DBClusterParameterGroupName=resource_id),
            self.node,
            retryable=lambda exc: error_code(exc) in {*RETRYABLE_CODES, *THROTTLING_CODES, IN_USE},
        )
