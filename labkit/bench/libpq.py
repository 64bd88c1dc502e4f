"""The benchmark's C path for Aurora PostgreSQL: each request through libpq's C API, as `pgbench -S` sends it.

psycopg's cursor does in Python what a benchmark does not need per request: it adapts each parameter, builds
the statement, makes a result object and converts every field through its loaders. Its binary wheels bundle
libpq with a thin compiled wrapper (`psycopg.pq`, the "binary" implementation), so the requests here go to libpq
straight: one call sends the statement (the simple query protocol, values written in as literals, as pgbench's
default `-M simple` sends them) and one per field reads the answer. libpq waits for the server with the GIL
released, so concurrent workers do not queue on it.

Without the compiled implementation (`psycopg.pq` in pure Python, over the system's libpq through ctypes)
`available()` is False and the benchmark uses psycopg's cursor.

Aurora PostgreSQL's engine description names this module (labkit.engines.aurora_postgresql); it has the shape
of every C path (labkit.bench.capi is Aurora MySQL's): `choose_driver`, `connect`, `operation`, `version` and
`Error`. Its errors are psycopg's own classes, worded as psycopg words them, so failed samples read and classify
(labkit.bench.failures) the same on both paths.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from labkit.bench.drivers import choose
from labkit.bench.workloads import Workload
from labkit.engines.dialect import libpq_tls

try:
    import psycopg
    from psycopg import pq
    from psycopg.conninfo import make_conninfo
except ImportError:  # psycopg is a dependency; without it the engine cannot be spoken at all
    psycopg = None  # type: ignore[assignment]

DRIVERS = ("auto", "capi", "psycopg")
SEVERITY = re.compile(r"^(ERROR|FATAL|PANIC):\s+")  # libpq's prefix, which psycopg's messages leave out
Error: type[Exception] = psycopg.Error if psycopg is not None else Exception  # what the C path raises


def available() -> bool:
    """Is psycopg's compiled libpq wrapper (its binary or local C implementation) importable here?"""
    return psycopg is not None and pq.__impl__ in ("binary", "c")


def choose_driver(driver: str) -> str:
    """`auto` is the C path where the compiled wrapper is installed, psycopg's cursor otherwise."""
    return choose(driver, pure=DRIVERS[-1], available=available(), needs="psycopg's compiled libpq wrapper",
                  install="pip install 'psycopg[binary]'")  # fmt: skip


def version() -> str | None:
    """The libpq the C path calls (None when there is none)."""
    if not available():
        return None
    number = pq.version()
    return f"libpq {number // 10000}.{number % 10000} (psycopg {psycopg.__version__}, {pq.__impl__})"


class Connection:
    """One libpq connection, closed like a DB-API one (the benchmark closes what it opened)."""

    def __init__(self, pgconn: Any) -> None:
        self.pgconn = pgconn
        self.escaping = pq.Escaping(pgconn)

    def close(self) -> None:
        self.pgconn.finish()


def _error(message: bytes, sqlstate: bytes | None = None, *, connecting: bool = False) -> Exception:
    """psycopg's class for the SQLSTATE (UndefinedTable, ...), else OperationalError (the connection failed or
    was lost: libpq gives no SQLSTATE then), worded as psycopg words it."""
    text = SEVERITY.sub("", message.decode(errors="replace").strip())
    if sqlstate:
        try:
            return psycopg.errors.lookup(sqlstate.decode())(text)
        except KeyError:
            return psycopg.DatabaseError(text)
    return psycopg.OperationalError(f"connection failed: {text}" if connecting else text)


def connect(
    host: str,
    port: int,
    user: str,
    password: str,
    database: str,
    timeout: float = 60,
    tls: tuple[str, str] | None = None,
) -> Connection:
    """One connection through libpq (autocommit: libpq runs each statement in its own transaction); with `tls` (the
    CA file, the endpoint's name), sslmode=verify-full: the chain and the endpoint's name, the socket to `host`."""
    if not available():
        raise ImportError("psycopg's compiled libpq wrapper is not installed")
    settings: dict[str, Any] = {
        "host": host, "port": port, "user": user, "password": password, "dbname": database,
        "connect_timeout": max(2, int(min(10, timeout))),  # libpq: whole seconds, at least 2
    }  # fmt: skip
    settings.update(libpq_tls(host, *tls) if tls is not None else {"sslmode": "disable"})
    conninfo = make_conninfo(**settings)
    pgconn = pq.PGconn.connect(conninfo.encode())
    if pgconn.status != pq.ConnStatus.OK:
        error = _error(pgconn.error_message, connecting=True)
        pgconn.finish()
        raise error
    return Connection(pgconn)


def _literal(connection: Connection, value: Any) -> str:
    """A value written into the statement as the simple query protocol carries it (ints as digits, text quoted)."""
    if isinstance(value, int):
        return str(value)
    return connection.escaping.escape_literal(str(value).encode()).decode()


def operation(connection: Connection, chosen: Workload, worker: int, keys: int, seed: int = 0) -> Callable[[], object]:
    """An operation for the harness: one request on this worker's libpq connection; returns its rows."""
    rng = random.Random(seed * 1000 + worker)  # the same arguments, request by request, as psycopg's path
    sql, arguments = chosen.sql, chosen.arguments
    execute, literal = connection.pgconn.exec_, _literal
    tuples_ok, command_ok = pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK
    sqlstate = pq.DiagnosticField.SQLSTATE

    def run() -> object:
        values = arguments(rng, worker, keys)
        text = (sql % tuple(literal(connection, v) for v in values)) if values else sql
        result = execute(text.encode())
        status = result.status
        if status == command_ok:
            return None
        if status != tuples_ok:
            raise _error(result.error_message or connection.pgconn.error_message, result.error_field(sqlstate))
        get, fields = result.get_value, range(result.nfields)
        return [[get(row, field) for field in fields] for row in range(result.ntuples)]

    return run
