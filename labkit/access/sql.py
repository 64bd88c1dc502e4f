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

from labkit.access.diagnosis import connection_failure
from labkit.access.lookup import lab_cluster
from labkit.access.tls import certificate_error, certificate_refused, verification
from labkit.access.tunnel import Tunnel, find_open
from labkit.access.tunnel.session import moved
from labkit.access.tunnel.target import validate_to
from labkit.aws.backend import Backend
from labkit.config import lab_and_backend
from labkit.engines import ACCESS_DENIED, LOST_CONNECTION, NO_SCHEMA, READ_ONLY, Dialect, engine_for
from labkit.errors import ConfigError, LabkitError
from labkit.lab.resources.database import DATABASE_NAME

READ_YOUR_WRITES_SECONDS = 2.0  # how long a read on a reader waits for this process's last write, at most


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
    return _credentials_of(lab_cluster(config, backend), backend)


def _credentials_of(cluster: dict[str, Any], backend: Backend) -> Credentials:
    arn = (cluster.get("MasterUserSecret") or {}).get("SecretArn")
    if not arn:
        raise LabkitError(
            f"the cluster {cluster['DBClusterIdentifier']} has no managed master-user secret",
            field="cluster",
            fix="the lab creates it with ManageMasterUserPassword=True; re-create the cluster with labkit",
        )
    secret = json.loads(backend.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    return Credentials(secret.get("username") or cluster["MasterUsername"], secret["password"], arn)


class RotatingPassword:
    """Gives every new connection the cluster's current master password: RDS rotates a managed secret (every 7
    days by default), so one refused with access denied reads the secret again and connects once more. Installed
    on each engine labkit makes (SQLAlchemy's do_connect event), so `engine()` in a learner's own code recovers
    from a rotation as `sql()` does."""

    def __init__(self, cluster: dict[str, Any], backend: Backend, dialect: Dialect, current: Credentials) -> None:
        self.cluster, self.backend, self.dialect, self.current = cluster, backend, dialect, current
        self._lock = threading.Lock()

    def install(self, made: Engine) -> Engine:
        sqlalchemy.event.listen(made, "do_connect", self.connect)
        return made

    def connect(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        cparams["password"] = self.current.password
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.Error as exc:
            if self.dialect.kind(self.dialect.error_code(exc)) != ACCESS_DENIED:
                raise
            with self._lock:
                self.current = _credentials_of(self.cluster, self.backend)
            cparams["password"] = self.current.password
            return dialect.connect(*cargs, **cparams)


@dataclass
class LabEngine:
    """An engine, the tunnel under it, and the dialect of the cluster at its far end (to word its errors)."""

    tunnel: Tunnel
    engine: Engine
    dialect: Dialect
    password: RotatingPassword | None = None
    connect_args: dict[str, Any] = field(default_factory=dict)  # the driver's, with TLS verifying the endpoint

    def fresh_engine(self) -> Engine:
        """A pool-less engine to the same place (a new connection per use: the reader endpoint balances those)."""
        made = sqlalchemy.create_engine(self.engine.url, poolclass=NullPool, connect_args=dict(self.connect_args))
        return self.password.install(made) if self.password else made


_connections: dict[tuple[Any, ...], LabEngine] = {}
_connections_lock = threading.Lock()


def engine(
    on: str = "writer",
    *,
    database: str | None = DATABASE_NAME,
    config: Any | None = None,
    backend: Backend | None = None,
) -> Engine:
    """A SQLAlchemy engine for 'writer', 'reader' or a DB instance, through a tunnel it opens; its driver is
    the one the cluster's engine needs (its dialect's, labkit.engines).

    One engine and one tunnel per target are kept and reused; a closed tunnel is opened again.
    """
    return lab_engine(on, database=database, config=config, backend=backend).engine


def lab_engine(
    on: str = "writer",
    *,
    database: str | None = DATABASE_NAME,
    config: Any | None = None,
    backend: Backend | None = None,
) -> LabEngine:
    """`engine()` with the tunnel and the dialect it was made with."""
    if isinstance(on, str) and on.startswith("i-"):
        raise ConfigError("SQL goes to a database, not an EC2 instance", field="on", fix="use 'writer' or 'reader'")
    validate_to(on, None)
    config, backend = lab_and_backend(config, backend)
    key = (config.lab, config.learner, backend.name, backend.region, on, database)
    with _connections_lock:
        current = _connections.get(key)
        # a restarted sandbox answers at a new address; a stopped one raises here (endpoint_url) with its fix
        if current is not None and moved(current.tunnel, backend):
            current.engine.dispose()
            del _connections[key]
            current = None
        revived = current is not None and current.tunnel.revive()  # its session ended: reopened, saying why
        if current is not None and current.tunnel.is_open and not revived:
            return current
        if current is not None:
            current.engine.dispose()  # its connections went through the old session
        tunnel = (
            current.tunnel
            if revived
            else find_open(on, config, backend) or Tunnel(on, config=config, backend=backend).open()
        )
        cluster = lab_cluster(config, backend)
        dialect = engine_for(cluster.get("Engine")).dialect
        secret = _credentials_of(cluster, backend)
        url = URL.create(
            dialect.driver, username=secret.username, password=secret.password,
            host=tunnel.host, port=tunnel.port, database=database,
        )  # fmt: skip
        # TLS verifying the endpoint's certificate and name (labkit.access.tls), the socket going to the tunnel
        verify = verification(backend, tunnel.target.host if tunnel.target else on)
        arguments = {**dialect.connect_args, **dialect.dbapi.tls_arguments(tunnel.host, *verify)}
        made = sqlalchemy.create_engine(
            url, pool_pre_ping=True, pool_size=4, max_overflow=4, connect_args=dict(arguments),
        )  # fmt: skip
        password = RotatingPassword(cluster, backend, dialect, secret)
        _connections[key] = LabEngine(tunnel, password.install(made), dialect, password, arguments)
        return _connections[key]


def close_engines() -> None:
    """Dispose every engine and close the tunnels under them."""
    with _connections_lock:
        connections = list(_connections.values())
        _connections.clear()
    for each in connections:
        each.engine.dispose()
        each.tunnel.close()


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
    A read on the reader sees this process's earlier writes where the engine can say how far a replica has got
    (the sandbox's servers; it waits up to READ_YOUR_WRITES_SECONDS); on Aurora it is eventual, usually 20 ms.
    """
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("the query is empty", field="query", fix="pass one SQL statement as a string")
    if params is not None and not isinstance(params, Mapping | list | tuple):
        raise ConfigError(
            f"params must be a dict (or a list of dicts), not {type(params).__name__}",
            field="params",
            fix='write the query with named placeholders, e.g. "WHERE id = :id", and pass params={"id": 7}',
        )
    _check_binds(query, params)
    config, backend = lab_and_backend(config, backend)
    lab = (config.lab, config.learner, backend.name, backend.region)
    for attempt in (1, 2):
        opened = lab_engine(on, config=config, backend=backend)
        try:
            return _run(opened, on, lab, query, params)
        except _NotConnected as failed:  # the statement never reached the server: safe to try once more
            if attempt == 1 and opened.dialect.kind(opened.dialect.error_code(failed.error.orig)) == ACCESS_DENIED:
                _forget(opened)  # RDS rotates a managed secret (every 7 days): read it again and try once more
                continue
            if attempt == 1 and opened.tunnel.ended:
                continue  # the session ended as we connected: lab_engine reopens it, once, saying why
            raise explain(failed.error, on, opened.tunnel, opened.dialect) from None
        except sqlalchemy.exc.DBAPIError as exc:
            raise explain(exc, on, opened.tunnel, opened.dialect) from None
    raise AssertionError("unreachable")  # pragma: no cover


class _NotConnected(Exception):
    """Connecting failed, so the statement was never sent (a retry cannot run it twice)."""

    def __init__(self, error: sqlalchemy.exc.DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


def _check_binds(query: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> None:
    """Every `:name` placeholder has a value, before any connection (SQLAlchemy would raise its own error after
    opening the tunnel). `':abc'` inside quotes is a placeholder too, to SQLAlchemy: say how to write it."""
    wanted = set(text(query).compile().params)
    rows = [params] if isinstance(params, Mapping) else list(params or [{}])
    for row in rows:
        missing = sorted(wanted - set(row if isinstance(row, Mapping) else {}))
        if missing:
            raise ConfigError(
                f"the query has placeholder{'s' if len(missing) > 1 else ''} {', '.join(':' + m for m in missing)} "
                "with no value",
                field="params",
                fix=f"pass params={{{missing[0]!r}: ...}}, or write a literal colon as \\:{missing[0]}",
            )


def _run(
    opened: LabEngine, on: str, lab: tuple[str, ...], query: str, params: Mapping[str, Any] | Sequence[Any] | None
) -> pd.DataFrame:
    try:
        connected = opened.engine.connect()
    except sqlalchemy.exc.DBAPIError as exc:
        raise _NotConnected(exc) from exc
    with connected as connection, connection.begin():
        if on == "reader":
            _catch_up(connection, opened.dialect, _last_writes.get(lab))
        result = connection.execute(text(query), params or {})
        if on == "reader" and not result.returns_rows:
            _refuse_a_write_on_a_writer(connection, opened.dialect)  # raising here rolls the statement back
        frame = (
            pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            if result.returns_rows
            else pd.DataFrame({"rows_affected": [result.rowcount]})
        )
    if on == "writer" and not result.returns_rows:
        _remember_write(lab, opened)
    return frame


def _refuse_a_write_on_a_writer(connection: Any, dialect: Dialect) -> None:
    """A statement sent to the reader endpoint changed something, so the endpoint led to a writable instance:
    a cluster with no reader (readers = 0) sends the reader endpoint to the writer, as Aurora does. Refused
    (the transaction is rolled back) rather than silently changing the writer; a read-only reader refuses it
    itself, with its own error, before this is asked."""
    instance, read_only = _identity_within(connection, dialect)
    if not int(read_only):
        raise LabkitError(
            f"the reader endpoint led to {instance}, the writer: this lab has no reader (readers = 0), and Aurora "
            "then sends the reader endpoint to the writer. The statement was rolled back",
            field="readers",
            fix="send writes to the writer (on='writer'); for a reader, set readers = 1 in 00_setup's form, save, "
            "and run 02_database's apply again",
        )


def _identity_within(connection: Any, dialect: Dialect) -> Any:
    """`_identity` inside an open transaction: each query that may fail runs in a savepoint, so its failure
    leaves the transaction (and the statement to roll back) as it was."""
    *others, last = dialect.identity_queries
    for query in others:
        try:
            with connection.begin_nested():
                return connection.execute(text(query)).one()
        except sqlalchemy.exc.DBAPIError:
            continue
    return connection.execute(text(last)).one()


def _forget(opened: LabEngine) -> None:
    """Drop a cached engine (its tunnel stays open), so the next call reads the cluster's secret again."""
    with _connections_lock:
        for key in [key for key, value in _connections.items() if value is opened]:
            del _connections[key]
    opened.engine.dispose()


# The writer's replication position after this process's last write, per lab: a later read on a reader waits
# until the reader has applied it, so a notebook reads what it just wrote (writes by others stay eventual).
_last_writes: dict[tuple[str, ...], str] = {}


def _remember_write(lab: tuple[str, ...], opened: LabEngine) -> None:
    if not opened.dialect.position_query:
        return
    try:
        with opened.engine.connect() as connection:
            position = connection.execute(text(opened.dialect.position_query)).scalar()
    except sqlalchemy.exc.DBAPIError:
        return  # an engine without positions (Aurora's own replicas): reads on readers stay eventual
    if position:
        _last_writes[lab] = str(position)


def _catch_up(connection: Any, dialect: Dialect, position: str | None) -> None:
    """Wait, on the connection the read will use, until its replica has applied `position` (bounded)."""
    if position and dialect.wait_query:
        connection.execute(text(dialect.wait_query), {"position": position, "seconds": READ_YOUR_WRITES_SECONDS})


def whoami(on: str = "writer", *, config: Any | None = None, backend: Backend | None = None) -> pd.DataFrame:
    """Which DB instance answers on `on`, and whether it is read-only.

    The dialect's identity queries are tried in order (Aurora MySQL names its instance in one server variable,
    the sandbox's MariaDB in another). Each call uses a new connection, as the reader endpoint balances per
    connection.
    """
    opened = lab_engine(on, config=config, backend=backend)
    fresh = opened.fresh_engine()
    try:
        with fresh.connect() as connection:
            row = _identity(connection, opened.dialect)
    except sqlalchemy.exc.DBAPIError as exc:
        raise explain(exc, on, opened.tunnel, opened.dialect) from None
    finally:
        fresh.dispose()
    tunnel = opened.tunnel
    endpoint = tunnel.target.host if tunnel and tunnel.target else on
    return pd.DataFrame([{"on": on, "endpoint": endpoint, "instance": row[0], "read_only": bool(int(row[1]))}])


def _identity(connection: Any, dialect: Dialect) -> Any:
    """The first of the dialect's identity queries the server knows (the others raise: an unknown variable)."""
    *others, last = dialect.identity_queries
    for query in others:
        try:
            return connection.execute(text(query)).one()
        except sqlalchemy.exc.DBAPIError:
            connection.rollback()
    return connection.execute(text(last)).one()


def explain(exc: sqlalchemy.exc.DBAPIError, on: str, tunnel: Tunnel | None, dialect: Dialect) -> LabkitError:
    """A database error as a LabkitError that says what it means here and what to do."""
    code = dialect.error_code(exc.orig)
    message = dialect.error_message(exc.orig, fallback=str(exc))
    if certificate_refused(str(exc.orig)):
        return certificate_error(on, tunnel.target.host if tunnel and tunnel.target else on, message)
    kind = dialect.kind(code)
    if kind == READ_ONLY:
        return LabkitError(
            f"{on} is read-only: {message}",
            field="on",
            fix="Aurora readers only serve reads; send writes to the writer (on='writer', the cluster endpoint)",
        )
    if kind == LOST_CONNECTION:
        if tunnel is None:
            return LabkitError(
                f"lost the connection to {on}: {message}",
                field="tunnel",
                fix=f"open a tunnel (labkit.tunnel('{on}')) and check labkit.can_reach('instance', '{on}')",
            )
        # a rule is blamed only when the reachability engine says one decides (AWS drops, the sandbox refuses)
        return connection_failure(on, tunnel, message, tunnel.recent_refusal())
    if kind == ACCESS_DENIED:
        return LabkitError(
            f"the database refused the master user: {message}",
            field="credentials",
            fix="the password comes from the cluster's secret; if it was rotated a moment ago, retry",
        )
    if kind == NO_SCHEMA:
        return LabkitError(message, field="schema", fix="create the lab schema first: labkit.create_schema()")
    coded = f" {code}" if code else ""
    return LabkitError(f"{on}: {dialect.server} error{coded}: {message}", field="query", fix="check the SQL statement")
