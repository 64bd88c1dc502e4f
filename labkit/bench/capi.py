"""The benchmark's C path: each request through libmysqlclient's C API (`_mysql_connector`, the extension that
ships with mysql-connector-python), so the client adds about what sysbench's C client adds.

Profiled end to end, a PyMySQL point select spends most of its client time in pure Python: building the
packet, parsing the result set's column definitions and converting each field (a bare PyMySQL loop is about
1.2-1.4x sysbench's text-protocol average on this machine). The C API does that work in C; what is left in
Python is one call to send the statement and one per row to fetch it. It speaks the text protocol, as
PyMySQL and `sysbench --db-ps-mode=disable` do: the statement goes with its values written in as literals.

mysql-connector-python is pinned to 9.1.0: its newer wheels (26.x) need OpenSSL 3.2, which Debian 12 lacks.
When the extension is not installed, `available()` is False and the benchmark uses PyMySQL.

This is Aurora MySQL's C path (its engine description names this module, labkit.engines.aurora_mysql): by
nature MySQL-only, like the sandbox's MariaDB engine. A C path has this module's shape: `choose_driver`,
`connect`, `operation`, `version` and `Error`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

from labkit.bench.drivers import choose
from labkit.bench.workloads import Workload

try:
    import _mysql_connector
except ImportError:  # mysql-connector-python is an optional extra: the pure-Python path works without it
    _mysql_connector = None

DRIVERS = ("auto", "capi", "pymysql")


class MySQLError(Exception):
    """A server or client error on the C path, worded as PyMySQL words it: (code, "message"), so failed
    samples and setup errors read, and classify (labkit.bench.failures), the same on both paths."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)

    def __str__(self) -> str:
        return f'({self.args[0]}, "{self.args[1]}")'


Error = MySQLError  # what the C path raises, by the name the benchmark asks every C path for


def available() -> bool:
    """Is the C API extension importable here?"""
    return _mysql_connector is not None


def choose_driver(driver: str) -> str:
    """`auto` is the C path where the extension is installed, the pure-Python driver otherwise."""
    return choose(driver, pure=DRIVERS[-1], available=available(), needs="mysql-connector-python's C extension",
                  install="pip install mysql-connector-python==9.1.0")  # fmt: skip


def _wrapped(exc: Exception) -> MySQLError:
    return MySQLError(int(getattr(exc, "errno", 0) or 0), str(getattr(exc, "msg", exc)))


def version() -> str | None:
    """The C client library's version (None when the extension is missing)."""
    return _mysql_connector.MySQL().get_client_info() if _mysql_connector else None


def connect(
    host: str,
    port: int,
    user: str,
    password: str,
    database: str,
    timeout: float = 60,
    tls: tuple[str, str] | None = None,
) -> Any:
    """One autocommit connection through the C API; with `tls` (the CA file, the endpoint's name), encrypted and its
    certificate chain verified against the CA file.

    The name is not checked here: libmysqlclient verifies the certificate against the host it dials
    (ssl_verify_identity), which through a tunnel is 127.0.0.1, and its C API has no setting for another name. So
    this path checks the chain only; labkit's PyMySQL connections to the same endpoint check the name too.
    """  # fmt: skip
    if _mysql_connector is None:
        raise ImportError("mysql-connector-python is not installed")
    # The wheel bundles its authentication plugins (mysql_native_password among them) beside the extension,
    # as mysql.connector.connection_cext finds them.
    plugins = os.path.join(os.path.dirname(os.path.abspath(_mysql_connector.__file__)), "mysql", "vendor", "plugin")
    connection = _mysql_connector.MySQL(
        buffered=True, raw=False, connection_timeout=int(min(10, timeout)), plugin_dir=plugins
    )
    try:
        secure = (
            {"ssl_ca": tls[0], "ssl_verify_cert": True, "ssl_verify_identity": False, "ssl_disabled": False}
            if tls is not None
            else {"ssl_disabled": True}
        )
        connection.connect(host=host, port=port, user=user, password=password, database=database, **secure)
        connection.autocommit(True)
    except _mysql_connector.MySQLInterfaceError as exc:
        raise _wrapped(exc) from None
    return connection


def _literal(connection: Any, value: Any) -> str:
    """A value written into the statement as the text protocol carries it (ints as digits, strings escaped)."""
    if isinstance(value, int):
        return str(value)
    return "'" + connection.escape_string(str(value)).decode() + "'"


def operation(connection: Any, chosen: Workload, worker: int, keys: int, seed: int = 0) -> Callable[[], object]:
    """An operation for the harness: one request on this worker's C API connection; returns its rows."""
    rng = random.Random(seed * 1000 + worker)  # the same arguments, request by request, as the PyMySQL path
    sql, arguments = chosen.sql, chosen.arguments
    query, fetch_row, free_result = connection.query, connection.fetch_row, connection.free_result
    literal = _literal

    failure = _mysql_connector.MySQLInterfaceError if _mysql_connector else Exception

    def run() -> object:
        values = arguments(rng, worker, keys)
        try:
            query((sql % tuple(literal(connection, v) for v in values)) if values else sql)
        except failure as exc:
            raise _wrapped(exc) from None
        if not connection.have_result_set:
            return None
        rows = []
        row = fetch_row()
        while row is not None:
            rows.append(row)
            row = fetch_row()
        free_result()
        return rows

    return run
