"""The one way tests make an Aurora cluster with plain RDS calls, and talk to its databases: of the lab's engine
(labkit.engines) unless a test names one, on the version its catalog offers by default, so a test names an
engine only where it tests that engine's own behaviour, or runs for every engine (the contract suite).

    ENGINE, ENGINE_NAMES             the lab's default engine; every engine labkit describes (the suite runs each)
    engine_named(name)               an engine description by RDS name (or the description itself)
    cluster_params(name, ...)        CreateDBCluster's arguments (managed password, encrypted, database shop)
    instance_params(cluster, id)     CreateDBInstance's arguments for one member
    create_cluster(rds, name, ...)   both calls: the cluster and its members (not waited for)
    reader_nodes(n)                  the node names of a writer and n readers
    connect(engine, host, port, ...) a DB-API connection through the engine's own driver (its dialect)
    rows(conn, sql, args)            a statement's rows as tuples, whichever the driver
    error_kind(engine, error)        what an engine's error means: READ_ONLY, ACCESS_DENIED, ... (its dialect)
    admin_connect(engine, port)      the sandbox's hidden admin account on one server (test-only)
(support.sandbox_lab builds on these: `started_cluster` and `aurora_cluster` wait for the sandbox's servers.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.engines import ENGINES, AuroraEngine, default_engine

ENGINE = default_engine()
ENGINE_NAMES = tuple(sorted(ENGINES))  # every engine labkit describes: each passes the engine contract suite
INSTANCE_CLASS = "db.t4g.medium"
HIDDEN_ADMIN = "rdsadmin"  # every sandbox engine's hidden administrative account (as Aurora's)


def engine_named(engine: str | AuroraEngine) -> AuroraEngine:
    """The description of `engine` (an RDS engine name, or already a description)."""
    return engine if isinstance(engine, AuroraEngine) else ENGINES[engine]


def cluster_params(
    name: str, *, managed: bool = True, engine: str | AuroraEngine = ENGINE, **extra: Any
) -> dict[str, Any]:
    """CreateDBCluster's arguments: RDS manages the master password in a secret unless `managed` is False (then
    pass MasterUserPassword in `extra`)."""
    engine = engine_named(engine)
    params: dict[str, Any] = {
        "DBClusterIdentifier": name, "Engine": engine.name, "EngineVersion": engine.catalog.default,
        "MasterUsername": "admin", "DatabaseName": "shop", "StorageEncrypted": True,
    }  # fmt: skip
    if managed:
        params["ManageMasterUserPassword"] = True
    return {**params, **extra}


def instance_params(
    cluster: str, identifier: str, *, engine: str | AuroraEngine = ENGINE, **extra: Any
) -> dict[str, Any]:
    """CreateDBInstance's arguments for one member of `cluster`."""
    return {
        "DBInstanceIdentifier": identifier, "DBClusterIdentifier": cluster, "Engine": engine_named(engine).name,
        "DBInstanceClass": INSTANCE_CLASS, **extra,
    }  # fmt: skip


def create_cluster(
    rds: Any,
    name: str,
    nodes: tuple[str, ...] = ("writer",),
    *,
    managed: bool = True,
    engine: str | AuroraEngine = ENGINE,
    **extra: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A cluster `name` of `engine` with a DB instance `name-node` per node (the first becomes the writer), as
    created: (the cluster, its instances). Nothing is waited for."""
    cluster = rds.create_db_cluster(**cluster_params(name, managed=managed, engine=engine, **extra))["DBCluster"]
    instances = [
        rds.create_db_instance(**instance_params(name, f"{name}-{node}", engine=engine))["DBInstance"] for node in nodes
    ]
    return cluster, instances


def reader_nodes(count: int) -> tuple[str, ...]:
    """Node names of a writer and `count` readers: ("writer", "reader-1", ...)."""
    return ("writer", *(f"reader-{i}" for i in range(1, count + 1)))


def connect(
    engine: str | AuroraEngine,
    host: str,
    port: int,
    password: str,
    *,
    user: str = "admin",
    database: str = "shop",
    timeout: float = 5,
) -> Any:
    """An autocommit DB-API connection through the engine's own driver, as labkit's clients make it."""
    dbapi = engine_named(engine).dialect.dbapi
    return dbapi.connect(host, port, user, password, database, connect_timeout=timeout, timeout=timeout)


def rows(conn: Any, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A statement's rows as tuples (none for a statement that returns none)."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql, args or None)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    finally:
        cursor.close()


def error_kind(engine: str | AuroraEngine, error: BaseException) -> str:
    """What an error means whatever the engine calls it: READ_ONLY, LOST_CONNECTION, ACCESS_DENIED, ... ."""
    dialect = engine_named(engine).dialect
    return dialect.kind(dialect.error_code(error))


def admin_connect(engine: str | AuroraEngine, port: int, home: Path, database: str | None = None) -> Any:
    """The sandbox's hidden admin account on the server on `port` of the sandbox in `home` (test-only)."""
    password = (home / "data" / "admin.secret").read_text().strip()
    engine = engine_named(engine)
    database = database or ("postgres" if engine.dialect.server == "PostgreSQL" else "mysql")
    return connect(engine, "127.0.0.1", port, password, user=HIDDEN_ADMIN, database=database)
