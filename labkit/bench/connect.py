"""Where the benchmark's connections go: through a Session Manager tunnel (what the notebook sees) or straight
to the endpoint (what an application inside the VPC sees; in the sandbox, the MariaDB port).

The benchmark, replica lag and the failover probe time raw PyMySQL requests, so they connect here rather
than through SQLAlchemy (`labkit.access.sql`), whose pool and pre-ping would sit inside every sample.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pymysql

from labkit.access.tunnel import Tunnel, find_open, resolve_target
from labkit.aws.backend import Backend
from labkit.lab.resources.database import DATABASE_NAME

Connect = Callable[..., Any]  # connect(secret, timeout=60) -> a PyMySQL connection


@contextlib.contextmanager
def connection_point(target: str, path: str, config: Any, backend: Backend) -> Iterator[Connect]:
    """A connect(secret) function for the target on the path; a tunnel opened here is closed after."""
    far = resolve_target(target, config, backend)
    if path == "direct":

        def direct(secret: Any, timeout: float = 60) -> Any:
            host, port = backend.resolve(far.host, far.port)  # the reader endpoint balances per connection
            return connect(host, port, secret, timeout)

        yield direct
        return
    reused = find_open(target, config, backend)
    tunnel = reused or Tunnel(target, config=config, backend=backend).open()
    try:
        yield lambda secret, timeout=60: connect(tunnel.host, tunnel.port, secret, timeout)
    finally:
        if reused is None:
            tunnel.close()


def connect(host: str, port: int, secret: Any, timeout: float = 60) -> Any:
    """One autocommit PyMySQL connection to the lab database as the master user."""
    return pymysql.connect(
        host=host, port=port, user=secret.username, password=secret.password, database=DATABASE_NAME,
        autocommit=True, connect_timeout=min(10, timeout), read_timeout=timeout, write_timeout=timeout,
    )  # fmt: skip


def run_on_writer(statement: str, config: Any, backend: Backend, secret: Any, path: str) -> None:
    """One statement on the writer, on its own connection (the benchmark tables are created this way)."""
    with connection_point("writer", path, config, backend) as open_connection:
        connection = open_connection(secret)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()
