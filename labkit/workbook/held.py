"""Security groups are stateful: a rule removed stops new connections, not the ones already open.

AWS tracks each connection a security group allowed, and removing the rule does not cut a tracked connection
("Security group connection tracking", EC2 User Guide); only new connections meet the rule change. The
sandbox's plugin does the same: it asks the rules on every new connection. So after 03's break step the web
app (a new connection per request) fails at once, while a connection opened before the change, such as one in
04's connection pool, still answers. `hold_connection` opens one connection before the change; `check()`
then asks it and a new one, side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from labkit.access.diagnosis import connection_failure
from labkit.access.lookup import cluster_engine
from labkit.access.sql import credentials
from labkit.access.tls import tunnel_verification
from labkit.access.tunnel import Tunnel
from labkit.aws.backend import Backend
from labkit.bench.connect import connect
from labkit.config import lab_and_backend
from labkit.engines import AuroraEngine, default_engine

NEW_CONNECTION_TIMEOUT = 5.0  # seconds: on AWS a blocked connection is dropped, so it only ever times out
HELD = "the connection opened before the change"
NEW = "a new connection, opened now"


@dataclass
class HeldConnection:
    """One database connection through its own tunnel, kept open; `check()` compares it with a new one."""

    to: str
    tunnel: Tunnel
    secret: Any = field(repr=False)
    connection: Any = field(repr=False)
    engine: AuroraEngine = field(default_factory=default_engine, repr=False)  # whose driver opens a new one

    def check(self) -> pd.DataFrame:
        """Ask the held connection and a new one `SELECT 1`; say which answers and why."""
        return pd.DataFrame([self._ask_held(), self._ask_new()], columns=["connection", "answers", "why"])

    def _ask_held(self) -> dict[str, Any]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception as exc:  # any failure is the answer to show
            return {"connection": HELD, "answers": False, "why": f"{type(exc).__name__}: {exc}"}
        return {
            "connection": HELD,
            "answers": True,
            "why": "opened before the change: the security group tracks a connection it allowed, and removing the "
            "rule does not cut it (security groups are stateful)",
        }

    def _ask_new(self) -> dict[str, Any]:
        try:
            connect(
                self.tunnel.host, self.tunnel.port, self.secret, self.engine, NEW_CONNECTION_TIMEOUT,
                tls=tunnel_verification(self.tunnel),
            ).close()  # fmt: skip
        except Exception as exc:  # a refusal (sandbox) or a timeout (AWS drops it): the diagnosis names the rule
            return {
                "connection": NEW,
                "answers": False,
                "why": connection_failure(self.to, self.tunnel, str(exc)).message,
            }
        return {"connection": NEW, "answers": True, "why": "the rules allow a new connection"}

    def close(self) -> None:
        """Close the connection and its tunnel."""
        try:
            self.connection.close()
        except Exception:  # already cut: nothing to close
            pass
        self.tunnel.close()

    def __repr__(self) -> str:
        return f"<HeldConnection to {self.to} through {self.tunnel.address}>"


def hold_connection(to: str = "writer", config: Any | None = None, backend: Backend | None = None) -> HeldConnection:
    """Open a tunnel of its own to `to` and one database connection through it, and keep both open."""
    config, backend = lab_and_backend(config, backend)
    tunnel = Tunnel(to, config=config, backend=backend).open()
    engine = cluster_engine(config, backend)
    try:
        secret = credentials(config, backend)
        connection = connect(tunnel.host, tunnel.port, secret, engine, timeout=30, tls=tunnel_verification(tunnel))
    except BaseException:
        tunnel.close()
        raise
    return HeldConnection(to, tunnel, secret, connection, engine)
