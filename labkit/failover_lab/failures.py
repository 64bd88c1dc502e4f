"""The three failures the lab makes, each through the RDS API from the learner's side (never from where the
strategies run): a planned failover, a writer crash, a reboot without failover."""

from __future__ import annotations

from labkit.aws.backend import Backend
from labkit.aws.tags import cluster_roles
from labkit.failover_lab.app import Cluster

FAILURES = ("planned", "crash", "reboot")


def make_failure(failure: str, cluster: Cluster, writer: str, backend: Backend) -> str:
    """Make `failure` happen to the cluster whose writer is `writer`; returns how (the call made)."""
    rds = backend.client("rds")
    if failure == "planned":
        described = rds.describe_db_clusters(DBClusterIdentifier=cluster.identifier)["DBClusters"][0]
        target = cluster_roles(described)[1][0]  # the first reader
        rds.failover_db_cluster(DBClusterIdentifier=cluster.identifier, TargetDBInstanceIdentifier=target)
        return f"failover_db_cluster(TargetDBInstanceIdentifier={target})"
    if failure == "crash":
        return backend.crash_db_instance(writer)  # AWS: reboot_db_instance(ForceFailover=True); sandbox: SIGKILL
    rds.reboot_db_instance(DBInstanceIdentifier=writer)
    return "reboot_db_instance (no failover)"
