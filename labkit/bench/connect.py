"""Where the benchmark's connections go: through a Session Manager tunnel (what the notebook sees) or straight
to the endpoint (what an application inside the VPC sees; in the sandbox, the MariaDB port).

The benchmark, replica lag and the failover probe time raw requests of the engine's DB-API driver (or of its
C-speed path), so they connect here rather than through SQLAlchemy (`labkit.access.sql`), whose pool and
pre-ping would sit inside every sample. Which driver, and which C path, is the engine's (labkit.engines).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from labkit.access.lookup import cluster_engine, lab_cluster
from labkit.access.tls import Verification, verification
from labkit.access.tunnel import Tunnel, find_open, resolve_target
from labkit.aws.backend import Backend
from labkit.aws.tags import cluster_roles
from labkit.engines import ENGINES, AuroraEngine
from labkit.errors import ConfigError, LabkitError
from labkit.lab.resources.database import DATABASE_NAME

Connect = Callable[..., Any]  # connect(secret, timeout=60) -> a DB-API connection
PATHS = ("tunnel", "direct")
# Each engine's C-speed path (labkit.bench.capi for Aurora MySQL: choose_driver, connect, operation, version and
# its Error), loaded with the benchmark: a C extension loaded after a plot has loaded matplotlib's libraries can
# fail ("cannot allocate memory in static TLS block"), and driver="auto" would then quietly take the slow path.
C_PATHS = {engine.name: importlib.import_module(engine.bench_c_path) for engine in ENGINES.values()}


def c_path(engine: AuroraEngine) -> ModuleType:
    """The engine's C-speed benchmark path."""
    return C_PATHS[engine.name]


def driver_errors(engine: AuroraEngine) -> tuple[type[Exception], ...]:
    """What a failed connection or request raises, on the driver's path and on the C path."""
    return (engine.dialect.dbapi.errors(), c_path(engine).Error)


def choose_path(path: str | None, backend: Backend, what: str) -> str:
    """The path a function that connects from this machine takes: `direct` only where the backend reaches the
    database endpoints (the sandbox); on AWS they resolve to private addresses (PubliclyAccessible=False,
    botocore's CreateDBInstance documentation), so the default is the tunnel and `direct` is refused."""
    if path is None:
        return "direct" if backend.reaches_private_endpoints else "tunnel"
    if path not in PATHS:
        raise ConfigError(f"unknown path {path!r}", field="path", fix=f"use one of {', '.join(PATHS)}")
    if path == "direct" and not backend.reaches_private_endpoints:
        raise ConfigError(
            f"{what} cannot connect straight to the database endpoints from this machine: on {backend.name} "
            "they resolve to private addresses inside the VPC",
            field="path",
            fix="leave path unset (it follows the backend) or use path='tunnel'",
        )
    return path


class Connector:
    """connect(secret) opens a connection of the engine's DB-API driver to one target on one path;
    .capi(secret) the same through the engine's C path; both with TLS, verifying `tls` (labkit.access.tls). Where
    the far end is is asked at each connection (the reader endpoint balances per connection)."""

    def __init__(self, address: Callable[[], tuple[str, int]], engine: AuroraEngine, tls: Verification | None) -> None:
        self.address = address
        self.engine = engine
        self.tls = tls

    def __call__(self, secret: Any, timeout: float = 60) -> Any:
        host, port = self.address()
        return connect(host, port, secret, self.engine, timeout, tls=self.tls)

    def capi(self, secret: Any, timeout: float = 60) -> Any:
        host, port = self.address()
        return c_path(self.engine).connect(
            host, port, secret.username, secret.password, DATABASE_NAME, timeout, tls=self.tls
        )


@contextlib.contextmanager
def connection_point(target: str, path: str, config: Any, backend: Backend) -> Iterator[Connector]:
    """A Connector for the target on the path; a tunnel opened here is closed after."""
    if target == "reader" and not cluster_roles(lab_cluster(config, backend))[1]:
        raise LabkitError(
            "this lab has no reader (readers = 0): Aurora then sends the reader endpoint to the writer, so a "
            "measurement of the reader would measure the writer again",
            field="readers",
            fix="set readers = 1 in 00_setup's form, save, and run 02_database's apply again (or `labkit up --readers 1 --save`)",
        )
    far = resolve_target(target, config, backend)
    engine = cluster_engine(config, backend)
    tls = verification(backend, far.host)  # the endpoint's name, on either path
    if path == "direct":
        choose_path(path, backend, f"a connection to {target}")  # never a raw connect timeout on AWS
        yield Connector(lambda: backend.resolve(far.host, far.port), engine, tls)
        return
    reused = find_open(target, config, backend)
    tunnel = reused or Tunnel(target, config=config, backend=backend).open()
    try:
        yield Connector(lambda: (tunnel.host, tunnel.port), engine, tls)
    finally:
        if reused is None:
            tunnel.close()


def connect(
    host: str, port: int, secret: Any, engine: AuroraEngine, timeout: float = 60, *, tls: Verification | None = None
) -> Any:
    """One autocommit connection of the engine's DB-API driver to the lab database as the master user; with `tls`
    (labkit.access.tls), encrypted and verified. None only for a client that shows what happens without TLS."""
    return engine.dialect.dbapi.connect(
        host,
        port,
        secret.username,
        secret.password,
        DATABASE_NAME,
        connect_timeout=min(10, timeout),
        timeout=timeout,
        tls=tls,
    )


def run_on_writer(statement: str, config: Any, backend: Backend, secret: Any, path: str) -> None:
    """One statement on the writer, on its own connection (the benchmark tables are created this way)."""
    with connection_point("writer", path, config, backend) as open_connection:
        connection = open_connection(secret)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()
