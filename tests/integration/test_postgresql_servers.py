"""The sandbox's PostgreSQL engine beyond the engine contract: what only PostgreSQL needs, with real servers.

Driven through the engine interface (as the reconciler drives it) in a home of the module's own: an old writer
that diverged rejoins by pg_rewind in its own data directory; one that cannot be rewound is BROKEN with its data
untouched; a promoted standby that inherited synchronous settings commits at once; under root the servers run as
the service account, which cannot read the home. Through the sandbox: Aurora's identity functions and the rights
of rds_superuser, and pg_hba.conf's rules.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from support.clusters import rows
from support.contract import endpoint_connection, until
from support.sandbox_lab import aurora_cluster

from labkit.sandbox.engines.base import BROKEN, REPLICATING
from labkit.sandbox.engines.postgresql import SERVICE_ACCOUNT, PostgreSQLEngine, PostgreSQLServer
from labkit.sandbox.processes import free_port
from labkit.sandbox.state import read_state

ADMIN, REPLICATION, MASTER = "admin-secret-1", "repl-secret-2", "Master-secret-3"


class Home:
    """A data root with its own prepared engine (its own template), and the servers a test starts in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, mode=0o700)
        self.engine = PostgreSQLEngine()
        self.engine.prepare(root, ADMIN, REPLICATION)
        self.servers: list[PostgreSQLServer] = []

    def server(self, name: str) -> PostgreSQLServer:
        server = self.engine.server(name, self.root / "instances" / name, free_port(), 1, ADMIN, REPLICATION)
        self.servers.append(server)
        server.start()
        server.wait_ready()
        return server

    def cluster(self, prefix: str) -> tuple[PostgreSQLServer, PostgreSQLServer]:
        """A bootstrapped writer and a standby streaming from it."""
        writer, standby = self.server(f"{prefix}-w"), self.server(f"{prefix}-s")
        writer.bootstrap_writer("admin", MASTER, "shop", REPLICATION)
        standby.replicate_from(writer.port, REPLICATION)
        until(lambda: standby.replication_state() == REPLICATING, "the standby streaming")
        return writer, standby


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Home]:
    made = Home(tmp_path_factory.mktemp("pg") / "data")
    yield made
    for server in made.servers:
        server.stop()


def _master(server: PostgreSQLServer) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=server.port, user="admin", password=MASTER, dbname="shop", autocommit=True,
        options="-c statement_timeout=10000",
    )  # fmt: skip


def test_an_old_writer_that_diverged_rejoins_by_rewind_in_its_own_data_directory(home):
    writer, standby = home.cluster("div")
    _master(writer).execute("CREATE TABLE t (id INT PRIMARY KEY, side TEXT)")
    until(lambda: standby.holds(writer.position()), "the table on the standby")
    standby.execute("ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")  # it hears no more
    until(lambda: standby.replication_state() != REPLICATING, "the standby to stop receiving")
    _master(writer).execute("INSERT INTO t VALUES (1, 'only the old writer')")  # never reaches the standby
    standby.promote(catch_up_to=None)  # a failover that could not wait for the old writer
    _master(standby).execute("INSERT INTO t VALUES (2, 'the new writer')")
    data_before = os.stat(writer.data).st_ino
    writer.replicate_from(standby.port, REPLICATION)
    until(lambda: writer.replication_state() == REPLICATING, "the old writer streaming from the new one")
    log = writer.log.read_text()
    assert "servers diverged at WAL location" in log and "Done!" in log, "pg_rewind brought it back"
    assert os.stat(writer.data).st_ino == data_before, "rewound in place, never replaced by a copy"
    assert until(lambda: _master(writer).execute("SELECT id FROM t ORDER BY id").fetchall() == [(2,)], "its rows")


def _data_files(server: PostgreSQLServer) -> dict[str, int]:
    """The data directory's relation and control files, by path, with their sizes (the running server's lock and
    options files aside)."""
    return {
        str(p.relative_to(server.data)): p.stat().st_size
        for p in server.data.rglob("*")
        if p.is_file() and p.parts[len(server.data.parts)] in ("base", "global", "PG_VERSION")
    }


def test_a_server_that_cannot_be_rewound_is_broken_and_keeps_its_data(home, tmp_path):
    _, standby = home.cluster("alien")
    stranger_home = Home(tmp_path / "data")  # another home's template: another database system
    try:
        stranger = stranger_home.server("stranger")
        stranger.bootstrap_writer("admin", MASTER, "shop", REPLICATION)
        files_before = _data_files(standby)
        standby.replicate_from(stranger.port, REPLICATION)
        assert standby.replication_state() == BROKEN  # the reconciler rebuilds it, its data kept aside
        assert "different systems" in standby.log.read_text()
        assert _data_files(standby) == files_before, "nothing copied over it, nothing deleted"
    finally:
        for server in stranger_home.servers:
            server.stop()


def test_a_promoted_standby_that_inherited_synchronous_settings_commits_at_once(home):
    writer, standby = home.cluster("sync")
    writer.require_replica_ack(True)
    _master(writer).execute("CREATE TABLE t (id INT PRIMARY KEY)")  # waits for the standby: it streams
    # what a base backup of a writer that requires a replica's acknowledgement carries
    standby.execute("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'", "SELECT pg_reload_conf()")
    position = writer.fence()
    standby.promote(catch_up_to=position)
    with ThreadPoolExecutor(1) as pool:  # a commit waiting for a standby ignores statement_timeout: wait outside
        commit = pool.submit(lambda: _master(standby).execute("INSERT INTO t VALUES (1)"))
        try:
            commit.result(timeout=15)
        except TimeoutError:
            standby.require_replica_ack(False)  # release it, so the test ends
            pytest.fail("the promoted standby's first commit waited for a standby it does not have")
    assert standby.execute("SHOW synchronous_standby_names") == [("",)]


def test_a_standby_behind_before_it_replayed_any_commit_still_reports_a_lag(home):
    """A standby's replayed-commit timestamp is empty until its first commit after a start; a lag computed from it
    alone was NULL whenever WAL arrived before that (CI saw it on a reader two seconds old)."""
    writer, standby = home.cluster("lagfirst")
    standby.stop()
    standby.start()  # a restart forgets the last replayed commit's time
    standby.wait_ready()
    until(lambda: standby.replication_state() == REPLICATING, "the standby streaming again")
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        _master(writer).execute("CREATE TABLE lag_probe (id INT)")
        until(lambda: standby.execute("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()") == [(True,)],
              "the commit received and not replayed")  # fmt: skip
        assert standby.execute("SELECT pg_last_xact_replay_timestamp()") == [(None,)], "the case this test is for"
        time.sleep(0.3)
        [(lag,)] = standby.execute("SELECT replica_lag_in_msec FROM aurora_replica_status() WHERE is_current")
        assert lag is not None and lag >= 250, "behind since the commit arrived: at least that long"
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")
    [(lag,)] = until(lambda: standby.execute(
        "SELECT replica_lag_in_msec FROM aurora_replica_status() WHERE is_current AND replica_lag_in_msec = 0"),
        "caught up: no lag")  # fmt: skip
    assert lag == 0


def test_under_root_the_servers_run_as_the_service_account_which_cannot_read_the_home(home):
    writer, _ = home.cluster(f"who-{uuid.uuid4().hex[:4]}")
    uid = os.stat(f"/proc/{writer.pid}").st_uid
    if os.geteuid() != 0:
        assert uid == os.geteuid()  # a learner's sandbox: its servers are the learner's own processes
        return
    import pwd

    assert pwd.getpwuid(uid).pw_name == SERVICE_ACCOUNT
    denied = subprocess.run(
        ["setpriv", f"--reuid={SERVICE_ACCOUNT}", f"--regid={SERVICE_ACCOUNT}", "--clear-groups", "ls", str(home.root)],
        capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip
    assert denied.returncode != 0 and "Permission denied" in denied.stderr


# ---- through the sandbox -----------------------------------------------------------------------------------------


def test_aurora_identity_functions_and_what_rds_superuser_may_do(sandbox_backend, sandbox_home):
    cluster, password = aurora_cluster(sandbox_backend, "pgid", engine="aurora-postgresql")
    writer = endpoint_connection("aurora-postgresql", cluster["Endpoint"], password)
    reader = endpoint_connection("aurora-postgresql", cluster["ReaderEndpoint"], password)
    status = "SELECT server_id, session_id = 'MASTER_SESSION_ID', is_current FROM aurora_replica_status() ORDER BY 1"
    assert rows(writer, status) == [("pgid-a", True, True), ("pgid-b", False, False)]
    assert rows(reader, status) == [("pgid-a", True, False), ("pgid-b", False, True)]
    assert rows(reader, "SELECT replica_lag_in_msec >= 0 FROM aurora_replica_status() WHERE is_current") == [(True,)]

    assert rows(writer, "SELECT pg_has_role('rds_superuser', 'member'), rolsuper FROM pg_roles "
                        "WHERE rolname = current_user") == [(True, False)]  # fmt: skip
    rows(writer, "CREATE DATABASE learners_own")  # Aurora's master user creates databases
    refused = {}
    for statement in (
        "CREATE ROLE app LOGIN",  # CREATEROLE would let it grant itself pg_execute_server_program
        "SHOW primary_conninfo",  # a setting only for the servers
        "SELECT pg_read_file('postgresql.auto.conf')",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "DROP FUNCTION aurora_db_instance_identifier()",
    ):
        with pytest.raises(psycopg.Error) as error:
            rows(writer, statement)
        refused[statement] = error.value.sqlstate
    assert set(refused.values()) <= {"42501", "42883"}, refused  # insufficient privilege (or must be owner)

    for name in read_state().instances:
        pgdata = sandbox_home / "data" / "instances" / name / "pgdata"
        rules = [line.split() for line in (pgdata / "pg_hba.conf").read_text().splitlines()]
        rules = [rule for rule in rules if rule and not rule[0].startswith("#")]
        assert rules and all(rule[0] == "host" and rule[-1] == "scram-sha-256" for rule in rules), rules
        assert not list(pgdata.glob(".s.PGSQL.*")), "no Unix socket: no local or peer login"
    writer.close()
    reader.close()
