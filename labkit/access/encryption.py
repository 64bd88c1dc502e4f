"""What the workbook shows of encryption in transit: the server's own view of a session's TLS, and a client
without TLS being refused.

    encryption("writer")          this labkit session's TLS version and cipher, as the server reports them
    plaintext_refused("writer")   a client that does not encrypt tries the same endpoint: the server's answer

Both ask the server (MySQL's session status `Ssl_version`/`Ssl_cipher`, PostgreSQL's pg_stat_ssl for this
backend), never the client's own idea of what it negotiated.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy
from sqlalchemy import text

from labkit.access.lookup import cluster_engine
from labkit.access.sql import credentials, explain, lab_engine
from labkit.access.tunnel import Tunnel, find_open
from labkit.aws.backend import Backend
from labkit.config import lab_and_backend
from labkit.lab.resources.database import DATABASE_NAME


def encryption(on: str = "writer", *, config: Any | None = None, backend: Backend | None = None) -> pd.DataFrame:
    """One row: the endpoint, the TLS version and cipher the server reports for this labkit connection, and what
    the client verified of the server's certificate."""
    opened = lab_engine(on, config=config, backend=backend)
    tls = cluster_engine(*lab_and_backend(config, backend)).tls
    try:
        with opened.engine.connect() as connection:
            result = connection.execute(text(tls.status_query))
            names = result.keys()  # SQLAlchemy's column names, not a dict
            columns = [str(name).lower() for name in names]
            rows = [tuple(row) for row in result]
    except sqlalchemy.exc.DBAPIError as exc:
        raise explain(exc, on, opened.tunnel, opened.dialect) from None
    if columns == ["variable_name", "value"]:  # MySQL's SHOW STATUS: one row per variable
        status = {str(name).lower(): value for name, value in rows}
        version, cipher = status.get("ssl_version") or None, status.get("ssl_cipher") or None
    else:
        version, cipher = rows[0] if rows else (None, None)
    return pd.DataFrame(
        [
            {
                "on": on,
                "endpoint": opened.tunnel.target.host if opened.tunnel.target else on,
                "tls_version": version or "none",
                "cipher": cipher or "none (not encrypted)",
                "verified": "certificate chain and endpoint name",
            }
        ]
    )


def plaintext_refused(on: str = "writer", *, config: Any | None = None, backend: Backend | None = None) -> pd.DataFrame:
    """A client that does not encrypt connects to `on` through a tunnel of labkit's, as the master user: one row
    saying whether the server refused it, and in its own words. The lab's cluster parameter group requires TLS,
    so the answer is a refusal; a server that let it in is reported so, and the connection closed at once."""
    config, backend = lab_and_backend(config, backend)
    engine = cluster_engine(config, backend)
    dbapi = engine.dialect.dbapi
    reused = find_open(on, config, backend)
    tunnel = reused or Tunnel(on, config=config, backend=backend).open()
    try:
        secret = credentials(config, backend)
        arguments = dbapi.arguments(
            tunnel.host, tunnel.port, secret.username, secret.password, DATABASE_NAME, connect_timeout=10, timeout=10
        )
        try:
            dbapi.load().connect(**arguments, **dbapi.plaintext_arguments()).close()
        except dbapi.errors() as exc:
            said = engine.dialect.error_message(exc, fallback=str(exc))
            refused = any(words in str(exc) for words in engine.tls.refusals)
            return pd.DataFrame([{"on": on, "client": "without TLS", "refused": refused, "server says": said}])
        return pd.DataFrame([{"on": on, "client": "without TLS", "refused": False, "server says": "(let it in)"}])
    finally:
        if reused is None:
            tunnel.close()
