"""Health like Aurora's: instances are `creating` until they answer, a dead reader is restarted, a dead writer is
failed over to a reader with no acknowledged write lost, `reboot_db_instance` works (with ForceFailover too),
and each of these leaves an RDS event.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pymysql
import pytest
from support.sandbox_lab import aurora_cluster

from labkit import sandbox
from labkit.sandbox.state import read_state


@pytest.fixture
def rds(sandbox_backend):
    return sandbox_backend.client("rds")


def _connect(endpoint: str, password: str, timeout: float = 2) -> pymysql.Connection:
    host, port = sandbox.resolve(endpoint)
    return pymysql.connect(
        host=host, port=port, user="admin", password=password, database="shop", autocommit=True,
        connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
    )  # fmt: skip


def _instance_status(rds, name: str) -> str:
    return rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"]


def _writer(rds, name: str) -> str:
    members = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["DBClusterMembers"]
    return next(m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"])


def _until(check, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _events(rds, source_type: str, source: str) -> list[str]:
    found = rds.describe_events(SourceType=source_type, SourceIdentifier=source)["Events"]
    return [e["Message"] for e in found]


def test_creating_until_the_database_answers_then_available_means_connectable(sandbox_backend, rds):
    cluster, password = aurora_cluster(sandbox_backend, "born")
    with _connect(cluster["Endpoint"], password) as conn, conn.cursor() as cur:  # no retry needed after the waiter
        cur.execute("SELECT 1")


def test_a_killed_reader_is_restarted_and_out_of_the_reader_endpoint_meanwhile(sandbox_backend, rds):
    cluster, password = aurora_cluster(sandbox_backend, "heal")
    reader = next(n for n in ("heal-a", "heal-b") if n != _writer(rds, "heal"))
    pid = read_state().instances[reader]["pid"]
    os.kill(pid, signal.SIGKILL)
    _until(lambda: read_state().instances[reader]["pid"] != pid, what="the reader's restart")
    _until(lambda: _instance_status(rds, reader) == "available", what="the reader to be available")
    with _connect(cluster["ReaderEndpoint"], password) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@read_only")
        assert cur.fetchone() == (1,)
    assert any("restarted" in m for m in _events(rds, "db-instance", reader))


def test_a_killed_writer_fails_over_automatically_and_loses_no_acknowledged_write(sandbox_backend, rds):
    cluster, password = aurora_cluster(sandbox_backend, "auto")
    old = _writer(rds, "auto")
    with _connect(cluster["Endpoint"], password) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE acked (id INT PRIMARY KEY)")
    acknowledged: list[int] = []
    stop = threading.Event()

    def write() -> None:  # one writer, as a learner's app: reconnect through the cluster endpoint on error
        n = 0
        while not stop.is_set():
            try:
                with _connect(cluster["Endpoint"], password, timeout=1) as conn, conn.cursor() as cur:
                    while not stop.is_set():
                        cur.execute("INSERT INTO acked VALUES (%s)", (n,))
                        acknowledged.append(n)
                        n += 1
            except pymysql.err.MySQLError:
                n += 1  # that write's outcome is unknown: never counted as acknowledged
                time.sleep(0.02)

    writer_thread = threading.Thread(target=write)
    writer_thread.start()
    _until(lambda: len(acknowledged) > 50, what="writes before the kill")
    os.kill(read_state().instances[old]["pid"], signal.SIGKILL)
    _until(lambda: _writer(rds, "auto") != old, what="the automatic failover")
    count = len(acknowledged)
    _until(lambda: len(acknowledged) > count + 20, what="writes on the new writer")
    stop.set()
    writer_thread.join()
    with _connect(cluster["Endpoint"], password) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM acked")
        stored = {row[0] for row in cur.fetchall()}
    assert set(acknowledged) <= stored, f"lost acknowledged writes: {sorted(set(acknowledged) - stored)[:10]}"
    messages = _events(rds, "db-cluster", "auto")
    assert f"Completed failover to DB instance: {_writer(rds, 'auto')}" in messages
    _until(lambda: _instance_status(rds, old) == "available", what="the old writer back as a reader")


@pytest.mark.parametrize("force", [False, True])
def test_reboot_db_instance_restarts_and_with_force_failover_moves_the_writer(sandbox_backend, rds, force):
    name = f"boot{int(force)}"
    cluster, password = aurora_cluster(sandbox_backend, name)
    old = _writer(rds, name)
    pid = read_state().instances[old]["pid"]
    answer = rds.reboot_db_instance(DBInstanceIdentifier=old, ForceFailover=force)["DBInstance"]
    assert answer["DBInstanceStatus"] == "rebooting"
    _until(lambda: read_state().instances[old]["pid"] != pid, what="the restart")
    _until(lambda: _instance_status(rds, old) == "available", what="the rebooted instance")
    assert (_writer(rds, name) != old) is force
    with _connect(cluster["Endpoint"], password) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE after_reboot (id INT)")  # the cluster endpoint takes writes
    assert any("restarted" in m for m in _events(rds, "db-instance", old))


def test_rotate_secret_changes_the_password_on_the_database_then_in_the_secret(sandbox_backend, rds):
    from support.sandbox_lab import admin_connection

    cluster, old = aurora_cluster(sandbox_backend, "rotated")
    secrets_client = sandbox_backend.client("secretsmanager")
    secrets_client.rotate_secret(SecretId=cluster["MasterUserSecret"]["SecretArn"])
    value = secrets_client.get_secret_value(SecretId=cluster["MasterUserSecret"]["SecretArn"])
    new = json.loads(value["SecretString"])["password"]
    assert new != old and "AWSCURRENT" in value["VersionStages"]
    reader = next(n for n in ("rotated-a", "rotated-b") if n != _writer(rds, "rotated"))
    _until(lambda: _logs_in(cluster["ReaderEndpoint"], new), what="the new password on the reader")
    for endpoint in (cluster["Endpoint"], cluster["ReaderEndpoint"]):
        assert _logs_in(endpoint, new) and not _logs_in(endpoint, old)
    with admin_connection(_writer(rds, "rotated")) as admin, admin.cursor() as cur:
        cur.execute("SHOW BINLOG EVENTS")
        events = " ".join(str(row) for row in cur.fetchall())
    assert new not in events and old not in events  # the hash travels, never the password
    assert reader


def _logs_in(endpoint: str, password: str) -> bool:
    try:
        _connect(endpoint, password).close()
    except pymysql.err.OperationalError:
        return False
    return True
