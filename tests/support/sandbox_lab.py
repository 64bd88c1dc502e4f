"""A whole lab applied on the real sandbox, for module-scoped fixtures of the integration tests."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator

import pymysql

from labkit.access.lookup import lab_cluster
from labkit.home import labkit_home
from labkit.sandbox.engines.mariadb import ADMIN_USER
from labkit.sandbox.state import read_state


def sandbox_lab(lab: str, learner: str):
    """Reset the sandbox and apply a whole lab (writer + reader + instance); returns (config, backend).

    For module-scoped fixtures of the SQL and benchmark tests; close_engines() and close_all() after use.
    """
    import io

    from labkit import sandbox
    from labkit.config import LabConfig
    from labkit.lab.apply import apply
    from labkit.sandbox.backend import SandboxBackend

    sandbox.reset()
    backend = SandboxBackend()
    config = LabConfig(lab=lab, learner=learner)
    apply(config, backend, stream=io.StringIO())
    sandbox.wait_for_databases(2)
    return config, backend


def admin_connection(instance: str) -> pymysql.connections.Connection:
    """The sandbox's hidden admin account on one DB instance (test-only: to stop replication on purpose)."""
    password = (labkit_home() / "data" / "admin.secret").read_text().strip()
    port = read_state().instances[instance]["port"]
    return pymysql.connect(host="127.0.0.1", port=port, user=ADMIN_USER, password=password, autocommit=True)


@contextlib.contextmanager
def replication_paused(instance: str) -> Iterator[pymysql.connections.Connection]:
    """The replica `instance` stops applying what the writer sends until the block ends (or the caller resumes it)."""
    admin = admin_connection(instance)
    with admin.cursor() as cursor:
        cursor.execute("STOP SLAVE SQL_THREAD")
    try:
        yield admin
    finally:
        with admin.cursor() as cursor:
            cursor.execute("START SLAVE SQL_THREAD")
        admin.close()


def rotate_master_password(config, backend, writer: str) -> str:
    """Rotate the cluster's master password as RDS does: change it on the database, then put it in the secret."""
    cluster = lab_cluster(config, backend)
    password = secrets.token_urlsafe(24)
    with admin_connection(writer) as admin, admin.cursor() as cursor:
        cursor.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (cluster["MasterUsername"], password))
    arn = cluster["MasterUserSecret"]["SecretArn"]
    client = backend.client("secretsmanager")
    value = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    client.put_secret_value(SecretId=arn, SecretString=json.dumps({**value, "password": password}))
    return password


def resume_replication_after(instance: str, seconds: float) -> threading.Timer:
    """Start the paused replica's SQL thread again after `seconds` (join the timer to wait for it)."""

    def resume() -> None:
        with admin_connection(instance) as admin, admin.cursor() as cursor:
            cursor.execute("START SLAVE SQL_THREAD")

    timer = threading.Timer(seconds, resume)
    timer.start()
    return timer
