"""The engine contract, part 1: what every engine labkit describes must do in the sandbox, checked the same way for
each (Aurora MySQL on MariaDB, Aurora PostgreSQL on PostgreSQL) through the RDS API and each engine's own driver.

Here: a cluster starts and bootstraps (each server says which instance it is; the master user owns the initial
database and is no superuser), its reader replicates and refuses writes with the engine's read-only error (1290,
25006); a dead reader is restarted, out of the reader endpoint meanwhile; FailoverDBCluster fences the old writer
and promotes the reader, with RDS's events. The other parts: test_engine_contract_durable.py (no acknowledged
write lost across writer kills, restarts keep the data) and test_engine_contract_private.py (passwords, files).
See support/contract.py for what a new engine declares to pass.
"""

from __future__ import annotations

import os
import signal

import pytest
from support.clusters import ENGINE_NAMES, rows
from support.contract import (
    SUPERUSER,
    endpoint_connection,
    events,
    instance_status,
    refused_as_read_only,
    until,
)
from support.sandbox_lab import aurora_cluster

from labkit.sandbox.engines.base import engine_class
from labkit.sandbox.state import read_state

pytestmark = pytest.mark.parametrize("engine", ENGINE_NAMES)


def test_a_cluster_starts_replicates_and_its_reader_refuses_writes_with_the_engines_read_only_error(
    sandbox_backend, engine
):
    cluster, password = aurora_cluster(sandbox_backend, "born", engine=engine)  # `available`: connectable at once
    identity = engine_class(engine).identity_sql
    writer = endpoint_connection(engine, cluster["Endpoint"], password)
    reader = endpoint_connection(engine, cluster["ReaderEndpoint"], password)
    assert rows(writer, identity) == [("born-a",)] and rows(reader, identity) == [("born-b",)]
    assert not SUPERUSER[engine](writer), "the master user is no superuser (it could write on a reader)"
    rows(writer, "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(20))")  # it owns the initial database
    rows(writer, "INSERT INTO t VALUES (1, 'hello')")
    assert until(lambda: rows(reader, "SELECT note FROM t WHERE id = 1"), "the row on the reader") == [("hello",)]
    refused_as_read_only(engine, reader, "INSERT INTO t VALUES (2, 'no')")
    writer.close()
    reader.close()


def test_a_dead_reader_is_restarted_then_failover_fences_the_old_writer_and_promotes_the_reader(
    sandbox_backend, engine
):
    rds = sandbox_backend.client("rds")
    cluster, password = aurora_cluster(sandbox_backend, "swap", engine=engine)
    identity = engine_class(engine).identity_sql
    writer = endpoint_connection(engine, cluster["Endpoint"], password)
    rows(writer, "CREATE TABLE t (id INT PRIMARY KEY)")
    rows(writer, "INSERT INTO t VALUES (1), (2), (3)")
    writer.close()

    pid = read_state().instances["swap-b"]["pid"]  # the reader dies: Aurora restarts it
    os.kill(pid, signal.SIGKILL)
    until(lambda: read_state().instances["swap-b"]["pid"] not in (pid, None), "the reader's restart")
    until(lambda: instance_status(rds, "swap-b") == "available", "the reader to be available again")
    assert any("restarted after its database process exited" in m for m in events(rds, "db-instance", "swap-b"))
    reader = endpoint_connection(engine, cluster["ReaderEndpoint"], password)
    assert rows(reader, identity) == [("swap-b",)]
    assert until(lambda: rows(reader, "SELECT COUNT(*) FROM t") == [(3,)], "the restarted reader's rows")
    reader.close()

    rds.failover_db_cluster(DBClusterIdentifier="swap", TargetDBInstanceIdentifier="swap-b")
    until(lambda: read_state().clusters["swap"]["writer"] == "swap-b", "the new writer in the endpoint map")
    new_writer = endpoint_connection(engine, cluster["Endpoint"], password)
    assert rows(new_writer, identity) == [("swap-b",)]
    rows(new_writer, "INSERT INTO t VALUES (4)")  # takes writes at once
    new_writer.close()
    until(lambda: read_state().clusters["swap"]["readers"] == ["swap-a"], "the old writer back as a reader")
    old = rds.describe_db_instances(DBInstanceIdentifier="swap-a")["DBInstances"][0]["Endpoint"]["Address"]
    old_writer = endpoint_connection(engine, old, password)
    refused_as_read_only(engine, old_writer, "INSERT INTO t VALUES (5)")  # fenced: it never takes writes again
    assert until(lambda: rows(old_writer, "SELECT COUNT(*) FROM t") == [(4,)], "the old writer replicating")
    old_writer.close()
    assert events(rds, "db-cluster", "swap")[-2:] == [
        "Started cross AZ failover to DB instance: swap-b", "Completed failover to DB instance: swap-b"
    ]  # fmt: skip
