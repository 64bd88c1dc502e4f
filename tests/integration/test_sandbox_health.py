"""Health like Aurora's: instances are `creating` until they answer, `reboot_db_instance` works (with
ForceFailover too), and each leaves an RDS event. A dead reader restarted and a dead writer failed over with no
acknowledged write lost are in the engine contract suite (test_engine_contract*.py), for every engine.
"""

from __future__ import annotations

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


def test_sigusr1_writes_every_daemon_thread_to_the_log_and_the_daemon_keeps_serving(sandbox_backend, sandbox_home):
    """How a daemon that stops answering or reconciling shows where it waits: `reset` sends SIGUSR1 before it gives
    up on the databases stopping, and anyone can (`kill -USR1`)."""
    import os
    import signal

    state = read_state()
    assert state is not None
    log = sandbox_home / "sandbox.log"
    before = log.stat().st_size
    os.kill(state.daemon_pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while "in serve" not in log.read_text(errors="replace")[before:] and time.monotonic() < deadline:
        time.sleep(0.05)
    dumped = log.read_text(errors="replace")[before:]
    assert "Thread 0x" in dumped and "in serve" in dumped, dumped[-2000:]  # the main loop and the other threads
    assert sandbox_backend.client("rds").describe_db_clusters()["DBClusters"] is not None, "it still answers"
    assert read_state().daemon_pid == state.daemon_pid
