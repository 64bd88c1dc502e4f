"""SQL on the lab's cluster through a tunnel: SQLAlchemy engines, results as DataFrames, secrets kept out of sight.

    sql("SELECT * FROM products WHERE id = :id", params={"id": 7})          on the writer
    sql("SELECT COUNT(*) FROM orders", on="reader")                         on a reader
    whoami("reader")                                                        which instance answered

The master password comes from the cluster's secret in Secrets Manager at connect time. It is never
printed: engine and URL reprs show `***`, and errors are raised as LabkitErrors without it. Parameters are
always bound by the driver, never formatted into the SQL text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from labkit.access.tunnel import Tunnel, find_open, lab_cluster
from labkit.access.tunnel.target import validate_to
from labkit.aws.backend import Backend
from labkit.config import lab_and_backend
from labkit.errors import ConfigError, LabkitError
from labkit.lab.resources.database import DATABASE_NAME

CONNECT_ARGS = {"connect_timeout": 10, "read_timeout": 60, "write_timeout": 60, "charset": "utf8mb4"}
# Which instance answered, and is it read-only: Aurora names itself in @@aurora_server_id; MariaDB (the
# sandbox) in @@report_host, which the sandbox sets to the DB instance identifier.
IDENTITY_QUERIES = ("SELECT @@aurora_server_id, @@innodb_read_only", "SELECT @@report_host, @@read_only")
READ_ONLY_ERRORS = (1290, 1836)  # --read-only option / running in read-only mode
LOST_CONNECTION_ERRORS = (2003, 2006, 2013)


@dataclass(frozen=True)
class Credentials:
    """The master user and password from the cluster's secret; the password never appears in a repr."""

    username: str
    password: str = field(repr=False)
    secret_arn: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', secret_arn={self.secret_arn!r})"


def credentials(config: Any | None = None, backend: Backend | None = None) -> Credentials:
    """Read the master credentials from the secret RDS manages for the lab's cluster."""
    config, backend = lab_and_backend(config, backend)
    cluster = lab_cluster(config, backend)
    arn = (cluster.get("MasterUserSecret") or {}).get("SecretArn")
    if not arn:
        raise LabkitError(
            f"the cluster {cluster['DBClusterIdentifier']} has no managed master-user secret",
            field="cluster",
            fix="the lab creates it with ManageMasterUserPassword=True; re-create the cluster with labkit",
        )
    secret = json.loads(backend.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    return Credentials(secret.get("username") or cluster["MasterUsername"], secret["password"], arn)


@dataclass
class _Connection:
    tunnel: Tunnel
    engine: Engine


_connections: dict[tuple[Any, ...], _Connection] = {}
_connections_lock = threading.Lock()


def engine(
    on: str = "writer",
    *,
    database: str | None = DATABASE_NAME,
    config: Any | None = None,
    backend: Backend | None = None,
) -> Engine:
    """A SQLAlchemy engine (PyMySQL) for 'writer', 'reader' or a DB instance, through a tunnel it opens.

    One engine and one tunnel per target are kept and reused; a closed tunnel is opened again.
    """
    if isinstance(on, str) and on.startswith("i-"):
        raise ConfigError("SQL goes to a database, not an EC2 instance", field="on", fix="use 'writer' or 'reader'")
    validate_to(on, None)
    config, backend = lab_and_backend(config, backend)
    key = (config.lab, config.learner, backend.name, backend.region, on, database)
    with _connections_lock:
        current = _connections.get(key)
        if current is not None and current.tunnel.is_open:
            return current.engine
        if current is not None:
            current.engine.dispose()
        tunnel = find_open(on, config, backend) or Tunnel(on, config=config, backend=backend).open()
        secret = credentials(config, backend)
        url = URL.create(
            "mysql+pymysql", username=secret.username, password=secret.password,
            host=tunnel.host, port=tunnel.port, database=database,
        )  # fmt: skip
        made = sqlalchemy.create_engine(
            url, pool_pre_ping=True, pool_size=4, max_overflow=4,
            connect_args=CONNECT_ARGS,
        )  # fmt: skip
        _connections[key] = _Connection(tunnel, made)
        return made


def close_engines() -> None:
    """Dispose every engine and close the tunnels under them."""
    with _connections_lock:
        connections = list(_connections.values())
        _connections.clear()
    for each in connections:
        each.engine.dispose()
        each.tunnel.close()


def tunnel_for(engine_: Engine) -> Tunnel | None:
    """The tunnel an engine from `engine()` goes through."""
    with _connections_lock:
        return next((c.tunnel for c in _connections.values() if c.engine is engine_), None)


def sql(
    query: str,
    on: str = "writer",
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    *,
    config: Any | None = None,
    backend: Backend | None = None,
) -> pd.DataFrame:
    """Run one statement in its own transaction and return the rows (or `rows_affected`) as a DataFrame.

    Placeholders are named (`:id`) and bound by the driver; a list of dicts runs the statement once per dict.
    """
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("the query is empty", field="query", fix="pass one SQL statement as a string")
    if params is not None and not isinstance(params, Mapping | list | tuple):
        raise ConfigError(
            f"params must be a dict (or a list of dicts), not {type(params).__name__}",
            field="params",
            fix='write the query with named placeholders, e.g. "WHERE id = :id", and pass params={"id": 7}',
        )
    made = engine(on, config=config, backend=backend)
    try:
        with made.begin() as connection:
            result = connection.execute(text(query), params or {})
            if result.returns_rows:
                return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            return pd.DataFrame({"rows_affected": [result.rowcount]})
    except sqlalchemy.exc.DBAPIError as exc:
        raise explain(exc, on, tunnel_for(made)) from None


def whoami(on: str = "writer", *, config: Any | None = None, backend: Backend | None = None) -> pd.DataFrame:
    """Which DB instance answers on `on`, and whether it is read-only.

    Aurora names itself in `@@aurora_server_id`; MariaDB (the sandbox) in `@@report_host`, which the sandbox
    sets to the DB instance identifier. Each call uses a new connection, as the reader endpoint balances
    per connection.
    """
    made = engine(on, config=config, backend=backend)
    fresh = sqlalchemy.create_engine(made.url, poolclass=NullPool, connect_args=CONNECT_ARGS)
    try:
        with fresh.connect() as connection:
            try:
                row = connection.execute(text(IDENTITY_QUERIES[0])).one()
            except sqlalchemy.exc.DBAPIError:  # 1193: not Aurora
                connection.rollback()
                row = connection.execute(text(IDENTITY_QUERIES[1])).one()
    except sqlalchemy.exc.DBAPIError as exc:
        raise explain(exc, on, tunnel_for(made)) from None
    finally:
        fresh.dispose()
    tunnel = tunnel_for(made)
    endpoint = tunnel.target.host if tunnel and tunnel.target else on
    return pd.DataFrame([{"on": on, "endpoint": endpoint, "instance": row[0], "read_only": bool(int(row[1]))}])


def explain(exc: sqlalchemy.exc.DBAPIError, on: str, tunnel: Tunnel | None) -> LabkitError:
    """A database error as a LabkitError that says what it means here and what to do."""
    original = exc.orig
    code = original.args[0] if original is not None and original.args and isinstance(original.args[0], int) else 0
    message = str(original.args[1]) if original is not None and len(original.args) > 1 else str(exc)
    if code in READ_ONLY_ERRORS:
        return LabkitError(
            f"{on} is read-only: {message}",
            field="on",
            fix="Aurora readers only serve reads; send writes to the writer (on='writer', the cluster endpoint)",
        )
    if code in LOST_CONNECTION_ERRORS:
        refusal = tunnel.recent_refusal() if tunnel else None
        if refusal:
            return LabkitError(
                f"the connection to {on} was refused on the far side of the tunnel: {refusal}",
                field="security groups",
                fix=f"see labkit.can_reach('instance', '{on}') for the rule to add",
            )
        return LabkitError(
            f"lost the connection to {on}: {message}",
            field="tunnel",
            fix="check the tunnel is open (labkit.tunnel) and that the instance can reach the database "
            f"(labkit.can_reach('instance', '{on}'))",
        )
    if code == 1045:
        return LabkitError(
            f"the database refused the master user: {message}",
            field="credentials",
            fix="the password comes from the cluster's secret; if it was rotated a moment ago, retry",
        )
    if code in (1049, 1146):
        return LabkitError(message, field="schema", fix="create the lab schema first: labkit.create_schema()")
    return LabkitError(f"{on}: MySQL error {code}: {message}", field="query", fix="check the SQL statement")
