"""AWS's Advanced Python Wrapper (`aws-advanced-python-wrapper`) with its failover plugin, on Aurora PostgreSQL.

The wrapper is a DB-API driver around psycopg that learns the cluster's topology from the server
(`aurora_replica_status()`), watches it, and when the connection breaks connects to the new writer itself; it then
raises FailoverSuccessError: the connection object now leads to the new writer, and the statement that failed
must be sent again. The application keeps one connection object for its whole life.

What runs for real against the sandbox: the wrapper's own code, its failover_v2 plugin and topology monitor
threads, its Aurora PostgreSQL dialect (chosen from the cluster endpoint's name, as on AWS), its topology,
host-id and is-reader queries (answered by the sandbox's `aurora_replica_status()`,
`aurora_db_instance_identifier()` and `pg_is_in_recovery()`), and its instance endpoints, built from
`cluster_instance_host_pattern`. One thing is given to it: the connect function it calls (its documented first
argument) resolves each host name through the sandbox's DNS before calling psycopg, as the system resolver would
resolve an Aurora name. On Aurora MySQL (MariaDB in the sandbox) it cannot run: its dialect asks for Aurora MySQL's
own server variable and topology table, which MariaDB does not have.
"""

from __future__ import annotations

import logging
from typing import Any

from labkit.failover_lab.app import TIMEOUT_SECONDS, App
from labkit.lab.resources.database import DATABASE_NAME

ENGINE = "aurora-postgresql"
FAILOVER_TIMEOUT_SECONDS = 10  # the wrapper's own default is 300: a run must not hang on it
PACKAGE = "aws-advanced-python-wrapper"


def available(engine_name: str) -> str:
    """Why the wrapper cannot run on this lab ('' when it can)."""
    if engine_name != ENGINE:
        return f"the {PACKAGE} runs against the sandbox's Aurora PostgreSQL only (MariaDB has no Aurora MySQL topology)"
    try:
        # an optional package: only asked whether it is there
        import aws_advanced_python_wrapper  # noqa: F401
    except ImportError:
        return f"{PACKAGE} is not installed (pip install '{PACKAGE}==3.1.0', or the dev extras)"
    return ""


def run(app: App) -> None:
    from aws_advanced_python_wrapper import AwsWrapperConnection  # optional: only this strategy needs it
    from aws_advanced_python_wrapper.pep249 import Error as WrapperError  # FailoverSuccessError's base, and its own

    logging.getLogger("aws_advanced_python_wrapper").addHandler(logging.NullHandler())  # its failover notice
    connection = None
    while app.running():
        with app.attempt() as attempt:
            if connection is None:
                connection = AwsWrapperConnection.connect(lambda **props: _connect(app, props), **_settings(app))
            try:
                app.write(connection)
            except WrapperError as exc:  # failed over (the connection now leads to the new writer), or could not
                raise ConnectionError(str(exc)) from exc  # the write was lost with the old connection: send it again
        if attempt.failed and connection is not None and connection.is_closed:
            connection = None  # the wrapper gave up on it: a new one
        app.pace()
    app.close(connection)


def release_resources() -> None:
    """Stop the wrapper's background threads, once the lab is over (a process does not exit while they run; once
    released, the wrapper does not start them again in this process, so not after each run)."""
    from aws_advanced_python_wrapper.cleanup import release_resources as release  # optional: see run()

    release()


def _settings(app: App) -> dict[str, Any]:
    instance = next(iter(app.cluster.instance_endpoints.values()))
    return {
        "wrapper_driver_dialect": "psycopg", "plugins": "failover_v2",
        "cluster_instance_host_pattern": "?." + instance.split(".", 1)[1],
        "failover_timeout_sec": FAILOVER_TIMEOUT_SECONDS, "connect_timeout": int(TIMEOUT_SECONDS),
        "host": app.cluster.endpoint, "port": app.cluster.port, "dbname": DATABASE_NAME,
        "user": app.secret.username, "password": app.secret.password, "autocommit": True,
    }  # fmt: skip


def _connect(app: App, props: dict[str, Any]) -> Any:
    """psycopg's connect, the host name resolved as DNS answers it now (the sandbox's endpoint map), encrypted
    and the server verified against that name, as every labkit connection is."""
    import psycopg  # the driver the wrapper wraps: loaded only when it connects

    address = app.resolve(str(props["host"]))
    tls = app.engine.dialect.dbapi.tls_arguments(address.host, app.trust_store, address.name) if app.trust_store else {}
    return psycopg.Connection.connect(**{**props, "host": address.host, "port": address.port, **tls})
