"""The one way tests make an Aurora cluster with plain RDS calls: of the lab's engine (labkit.engines), on the
version its catalog offers by default, so a test names an engine only where it tests that engine's own behaviour.

    cluster_params(name, ...)        CreateDBCluster's arguments (managed password, encrypted, database shop)
    instance_params(cluster, id)     CreateDBInstance's arguments for one member
    create_cluster(rds, name, ...)   both calls: the cluster and its members (not waited for)
    reader_nodes(n)                  the node names of a writer and n readers
(support.sandbox_lab builds on these: `started_cluster` and `aurora_cluster` wait for the sandbox's servers.)
"""

from __future__ import annotations

from typing import Any

from labkit.engines import AuroraEngine, default_engine

ENGINE = default_engine()
INSTANCE_CLASS = "db.t4g.medium"


def cluster_params(name: str, *, managed: bool = True, engine: AuroraEngine = ENGINE, **extra: Any) -> dict[str, Any]:
    """CreateDBCluster's arguments: RDS manages the master password in a secret unless `managed` is False (then
    pass MasterUserPassword in `extra`)."""
    params: dict[str, Any] = {
        "DBClusterIdentifier": name, "Engine": engine.name, "EngineVersion": engine.catalog.default,
        "MasterUsername": "admin", "DatabaseName": "shop", "StorageEncrypted": True,
    }  # fmt: skip
    if managed:
        params["ManageMasterUserPassword"] = True
    return {**params, **extra}


def instance_params(cluster: str, identifier: str, *, engine: AuroraEngine = ENGINE, **extra: Any) -> dict[str, Any]:
    """CreateDBInstance's arguments for one member of `cluster`."""
    return {
        "DBInstanceIdentifier": identifier, "DBClusterIdentifier": cluster, "Engine": engine.name,
        "DBInstanceClass": INSTANCE_CLASS, **extra,
    }  # fmt: skip


def create_cluster(
    rds: Any, name: str, nodes: tuple[str, ...] = ("writer",), *, managed: bool = True, **extra: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A cluster `name` with a DB instance `name-node` per node (the first becomes the writer), as created:
    (the cluster, its instances). Nothing is waited for."""
    cluster = rds.create_db_cluster(**cluster_params(name, managed=managed, **extra))["DBCluster"]
    instances = [rds.create_db_instance(**instance_params(name, f"{name}-{node}"))["DBInstance"] for node in nodes]
    return cluster, instances


def reader_nodes(count: int) -> tuple[str, ...]:
    """Node names of a writer and `count` readers: ("writer", "reader-1", ...)."""
    return ("writer", *(f"reader-{i}" for i in range(1, count + 1)))
