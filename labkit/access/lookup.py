"""Finding the lab's Aurora cluster and EC2 instance, and a DB or EC2 instance by its id: one module for all.

Tunnels, SQL, the endpoints table, the benchmark and the Session Manager readiness checks all start from these
lookups, so a missing cluster or instance is reported the same way everywhere, with how to create it.
(`labkit.security.snapshot` describes the same resources in bulk for its own model; the lab's provisioning in
`labkit.lab.resources` finds them by tag to decide what to create.)
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from labkit.aws.backend import Backend
from labkit.aws.errors import error_code, is_not_found
from labkit.aws.tags import NODE_CLUSTER, NODE_INSTANCE, ec2_filters, live_instance_filter, resource_name
from labkit.engines import AuroraEngine, engine_for
from labkit.errors import LabkitError


def cluster_identifier(config: Any) -> str:
    """The DBClusterIdentifier of the config's lab and learner."""
    return resource_name(config.lab, config.learner, NODE_CLUSTER)


def lab_cluster(config: Any, backend: Backend) -> dict[str, Any]:
    """The lab's Aurora cluster description, or a LabkitError that says how to create it."""
    identifier = cluster_identifier(config)
    try:
        return backend.client("rds").describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
    except ClientError as exc:
        if is_not_found(exc):
            raise LabkitError(
                f"the lab's cluster {identifier} does not exist",
                field="cluster",
                fix="create it first (notebook 02_database, or `labkit up`)",
            ) from None
        raise


def cluster_engine(config: Any, backend: Backend) -> AuroraEngine:
    """The engine of the lab's cluster as it exists: what a client of it must speak, whatever engine the config
    in hand names (a command given only --lab and --learner has the default engine's)."""
    return engine_for(lab_cluster(config, backend).get("Engine"))


def db_instance(backend: Backend, identifier: str) -> dict[str, Any]:
    """One DB instance's description (a ClientError when there is none: callers word it for their context)."""
    return backend.client("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def find_instance(backend: Backend, instance_id: str) -> dict[str, Any] | None:
    """An EC2 instance's description in any state, or None when the id is unknown (or malformed) here."""
    try:
        reservations = backend.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if error_code(exc).startswith("InvalidInstanceID"):  # .NotFound, .Malformed
            return None
        raise
    found = [i for r in reservations for i in r["Instances"]]
    return found[0] if found else None


def running_instance(backend: Backend, *, config: Any = None, instance_id: str | None = None) -> str:
    """The lab's (or the given) EC2 instance id; it must exist and not be shutting down or terminated."""
    ec2 = backend.client("ec2")
    if instance_id:
        try:
            reservations = ec2.describe_instances(InstanceIds=[instance_id], Filters=[live_instance_filter()])
        except ClientError:
            reservations = {"Reservations": []}
    else:
        filters = [*ec2_filters(config.lab, config.learner, NODE_INSTANCE), live_instance_filter()]
        reservations = ec2.describe_instances(Filters=filters)
    found = sorted(i["InstanceId"] for r in reservations["Reservations"] for i in r["Instances"])
    if not found:
        what = instance_id or f"the lab's instance ({resource_name(config.lab, config.learner, NODE_INSTANCE)})"
        raise LabkitError(
            f"{what} does not exist: the tunnel runs through it",
            field="instance",
            fix="create it first (notebook 03_compute, or `labkit up`)",
        )
    return found[0]
