"""A whole lab applied on the real sandbox, for module-scoped fixtures of the integration tests."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pymysql
from support.clusters import create_cluster, reader_nodes

from labkit import sandbox
from labkit.access.lookup import lab_cluster
from labkit.home import labkit_home
from labkit.sandbox.engines.mariadb import ADMIN_USER
from labkit.sandbox.state import read_state


def sandbox_lab(lab: str, learner: str):
    """Reset the sandbox and apply a whole lab (writer + reader + instance); returns (config, backend).

    For module-scoped fixtures of the SQL and benchmark tests; close_engines() and close_all() after use.
    """
    import io

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


def rotate_master_password(config, backend, writer: str | None = None) -> str:
    """Rotate the cluster's master password with RotateSecret, as RDS does every 7 days: the sandbox changes it on
    the database, then in the secret. Returns the new password."""
    arn = lab_cluster(config, backend)["MasterUserSecret"]["SecretArn"]
    client = backend.client("secretsmanager")
    before = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])["password"]
    client.rotate_secret(SecretId=arn)
    after = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])["password"]
    assert after != before, "RotateSecret left the password as it was"
    return after


def resume_replication_after(instance: str, seconds: float) -> threading.Timer:
    """Start the paused replica's SQL thread again after `seconds` (join the timer to wait for it)."""

    def resume() -> None:
        with admin_connection(instance) as admin, admin.cursor() as cursor:
            cursor.execute("START SLAVE SQL_THREAD")

    timer = threading.Timer(seconds, resume)
    timer.start()
    return timer


def started_cluster(backend, name: str, readers: int = 1, *, managed: bool = True, **extra: Any) -> dict:
    """A cluster with a writer and `readers` readers (support.clusters), returned once the sandbox runs its
    servers (wait_for_databases counts every instance: those of other clusters too)."""
    cluster, _ = create_cluster(backend.client("rds"), name, reader_nodes(readers), managed=managed, **extra)
    state = read_state()
    known = state.instances.values() if state else []
    mine = sum(1 for instance in known if instance["cluster"] == name)  # already listed, so counted below
    sandbox.wait_for_databases(len(known) + readers + 1 - mine)
    return cluster


def aurora_cluster(backend, name: str, nodes: tuple[str, ...] = ("a", "b")) -> tuple[dict, str]:
    """A cluster of `nodes` DB instances made with plain RDS calls, waited for with the RDS waiter as a learner's
    code waits; returns (the cluster as created, its master password from the managed secret)."""
    rds = backend.client("rds")
    cluster, instances = create_cluster(rds, name, nodes)
    statuses = [instance["DBInstanceStatus"] for instance in instances]
    assert set(statuses) == {"creating"}, statuses  # as AWS answers CreateDBInstance
    rds.get_waiter("db_instance_available").wait(
        Filters=[{"Name": "db-cluster-id", "Values": [name]}], WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
    )
    secret = backend.client("secretsmanager").get_secret_value(SecretId=cluster["MasterUserSecret"]["SecretArn"])
    return cluster, json.loads(secret["SecretString"])["password"]
