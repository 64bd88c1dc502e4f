"""Aurora PostgreSQL on every path a learner takes (issue #22, item 5), against the sandbox's real PostgreSQL 15
servers: labkit.sql and whoami through Session Manager tunnels, the read-only refusal, reading your own writes,
the security group enforced on 5432, a real psql and a real pgbench through a tunnel (the service file labkit
tunnel writes), the benchmark on both of its paths, replica lag, the web app (through the sandbox's relay for
libpq) and a failover that loses no acknowledged write.

One lab for the module; the failover, which swaps the roles, comes last, and no test names the writer by its
identifier: each asks RDS which instance has which role."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support import tls_checks

from labkit import sandbox
from labkit.access.lookup import lab_cluster
from labkit.access.schema import create_schema
from labkit.access.sql import READ_YOUR_WRITES_SECONDS, close_engines, credentials, sql, whoami
from labkit.access.tunnel import close_all, tunnel
from labkit.access.webapp import web_app
from labkit.aws.tags import cluster_roles
from labkit.bench import benchmark, compare, failover, replica_lag
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home
from labkit.lab.apply import apply
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.state import read_state
from labkit.security import can_reach, revoke_rules

LAB, LEARNER = "pglab", "ada"
PORT = 5432
LABKIT = Path(sys.executable).with_name("labkit")


@pytest.fixture(scope="module")
def lab(sandbox_home):
    sandbox.reset()
    backend = SandboxBackend()
    config = LabConfig(lab=LAB, learner=LEARNER, engine="aurora-postgresql")
    apply(config, backend, stream=io.StringIO())
    sandbox.wait_for_databases(2)
    create_schema(config=config, backend=backend)
    yield config, backend
    close_engines()
    close_all()


def roles(config, backend) -> tuple[str, str]:
    """(writer, reader) as RDS names them now."""
    writer, readers = cluster_roles(lab_cluster(config, backend))
    return writer or "", readers[0]


@contextlib.contextmanager
def replay_paused(instance: str) -> Iterator[None]:
    """The standby `instance` receives the writer's WAL but replays none of it until the block ends (the hidden
    superuser pauses it: test-only)."""
    password = (labkit_home() / "data" / "admin.secret").read_text().strip()
    port = read_state().instances[instance]["port"]
    with psycopg.connect(host="127.0.0.1", port=port, user="rdsadmin", password=password, dbname="postgres",
                         autocommit=True) as admin:  # fmt: skip
        admin.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            admin.execute("SELECT pg_wal_replay_resume()")


def test_whoami_names_each_instance_and_its_role(lab):
    config, backend = lab
    writer, reader = roles(config, backend)
    on_writer = whoami("writer", config=config, backend=backend).iloc[0]
    on_reader = whoami("reader", config=config, backend=backend).iloc[0]
    assert (on_writer["instance"], bool(on_writer["read_only"])) == (writer, False)
    assert (on_reader["instance"], bool(on_reader["read_only"])) == (reader, True)
    version = sql("SELECT version() AS v", config=config, backend=backend)["v"][0]
    assert version.startswith("PostgreSQL 15"), version


def test_the_schema_is_idempotent_and_the_next_order_gets_the_next_key(lab):
    config, backend = lab
    again = create_schema(config=config, backend=backend)
    assert dict(zip(again["table"], again["rows"], strict=True))["products"] == 100
    hostile = "Robert'); DROP TABLE orders;--"
    sql("INSERT INTO orders (product_id, customer, quantity) VALUES (:p, :c, :q)", params={"p": 7, "c": hostile, "q": 2},
        config=config, backend=backend)  # fmt: skip
    found = sql("SELECT id, customer FROM orders WHERE customer = :c", on="reader", params={"c": hostile},
                config=config, backend=backend)  # fmt: skip
    assert found["customer"].tolist()[-1] == hostile and found["id"].max() > 20  # after the sample orders' keys


def test_a_write_on_the_reader_is_refused_as_read_only(lab):
    config, backend = lab
    with pytest.raises(LabkitError) as refused:
        sql("DELETE FROM orders WHERE id = 1", on="reader", config=config, backend=backend)
    assert refused.value.field == "on" and "read-only" in refused.value.message
    with pytest.raises(LabkitError) as missing:
        sql("SELECT * FROM no_such_table", config=config, backend=backend)
    assert missing.value.field == "schema"


def test_a_read_on_the_reader_waits_for_this_processs_write_and_no_longer(lab):
    config, backend = lab
    _, reader = roles(config, backend)
    with replay_paused(reader):
        sql("INSERT INTO orders (product_id, customer, quantity) VALUES (3, 'Grace', 1)", config=config,
            backend=backend)  # fmt: skip
        started = time.monotonic()
        rows = sql("SELECT customer FROM orders ORDER BY id DESC LIMIT 1", on="reader", config=config, backend=backend)
        waited = time.monotonic() - started
    assert rows["customer"].tolist() != ["Grace"], "replay was paused: the read is eventual past the wait"
    assert READ_YOUR_WRITES_SECONDS - 0.1 <= waited < READ_YOUR_WRITES_SECONDS + 2
    sql("INSERT INTO orders (product_id, customer, quantity) VALUES (3, 'Linus', 1)", config=config, backend=backend)
    rows = sql("SELECT customer FROM orders ORDER BY id DESC LIMIT 1", on="reader", config=config, backend=backend)
    assert rows["customer"].tolist() == ["Linus"]


def test_the_security_group_decides_on_5432_and_an_established_connection_lives_on(lab):
    config, backend = lab
    secret = credentials(config, backend)
    login = {"user": secret.username, "password": secret.password, "dbname": "shop", "connect_timeout": 5}
    with tunnel("writer", config=config, backend=backend) as opened:
        kept = psycopg.connect(host="127.0.0.1", port=opened.port, autocommit=True, **login)
        revoke_rules(config, "sg-db", PORT, backend=backend)
        try:
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(host="127.0.0.1", port=opened.port, **login)
            refusal = opened.recent_refusal() or ""
            assert "BLOCKED at security group ingress" in refusal and str(PORT) in refusal, refusal
            assert kept.execute("SELECT 1").fetchone() == (1,)  # security groups are stateful
            with pytest.raises(LabkitError) as explained:
                whoami("writer", config=config, backend=backend)
            assert explained.value.field == "security groups" and "can_reach" in explained.value.fix
            verdict = can_reach("instance", "writer", config=config, backend=backend)  # the lab engine's port
            assert not verdict.reachable and verdict.port == PORT
        finally:
            kept.close()
            apply(config, backend, stream=io.StringIO())  # converges the rule back
        psycopg.connect(host="127.0.0.1", port=opened.port, **login).close()
    assert whoami("writer", config=config, backend=backend)["read_only"].tolist() == [False]


def _cli_tunnel(to: str) -> tuple[subprocess.Popen, list[str]]:
    held = subprocess.Popen(
        [str(LABKIT), "tunnel", to, "--lab", LAB, "--learner", LEARNER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = []
    for line in held.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    return held, lines


def test_psql_and_pgbench_connect_through_labkit_tunnel_with_the_printed_service_file(lab):
    config, backend = lab
    password = credentials(config, backend).password
    held, lines = _cli_tunnel("writer")
    try:
        text = "".join(lines)
        command = next(line for line in lines if "psql service=labkit" in line).split("(the file")[0].strip()
        service = Path(command.split()[0].split("=", 1)[1])
        assert password not in text and "get-secret-value" in text
        assert service.stat().st_mode & 0o777 == 0o600
        env = {**os.environ, "PGSERVICEFILE": str(service)}
        psql = subprocess.run(["psql", "service=labkit", "-Atc", "SELECT aurora_db_instance_identifier(), "
                               "pg_is_in_recovery(), current_user"], env=env, capture_output=True, text=True,
                              timeout=30)  # fmt: skip
        assert psql.returncode == 0, psql.stderr
        assert psql.stdout.strip() == f"{roles(config, backend)[0]}|f|admin"
        steps = [["-i", "-q", "-s", "1"], ["-S", "-n", "-t", "300"], ["-i", "-I", "d"]]  # init, select-only, drop
        runs = [subprocess.run(["pgbench", *step, "service=labkit"], env=env, capture_output=True, text=True,
                               timeout=120) for step in steps]  # fmt: skip
        for step, run in zip(steps, runs, strict=True):
            assert run.returncode == 0, f"pgbench {step}: {run.stderr}"
        assert "number of transactions actually processed: 300/300" in runs[1].stdout
    finally:
        held.send_signal(signal.SIGINT)
        assert held.wait(30) == 0
    assert not service.exists(), "the service file goes with the tunnel"


def test_the_benchmark_runs_on_both_paths_and_both_drivers(lab):
    config, backend = lab
    for driver in ("capi", "psycopg"):
        result = benchmark(("writer", "reader"), workload="point", path="tunnel", count=200, driver=driver,
                           config=config, backend=backend).check()  # fmt: skip
        summary = result.summary().set_index("target")
        assert summary.loc[["writer", "reader"], "count"].tolist() == [200, 200]
        assert result.metadata["driver"] == driver and result.metadata["engine"] == "aurora-postgresql"
    inserts = benchmark("writer", workload="insert", path="direct", count=100, config=config, backend=backend).check()
    assert int(inserts.summary()["errors"].sum()) == 0
    assert sql("SELECT COUNT(*) AS n FROM bench_writes", config=config, backend=backend)["n"][0] >= 100
    with pytest.raises(ConfigError) as unknown:
        benchmark("writer", driver="pymysql", config=config, backend=backend)
    assert unknown.value.field == "driver" and "psycopg" in unknown.value.fix


def test_a_benchmark_on_a_missing_table_names_the_fix(lab):
    config, backend = lab
    sql("ALTER TABLE products RENAME TO products_away", config=config, backend=backend)
    try:
        with pytest.raises(LabkitError) as failed:
            benchmark("writer", path="direct", count=50, config=config, backend=backend).check()
        assert "labkit schema" in failed.value.fix
    finally:
        sql("ALTER TABLE products_away RENAME TO products", config=config, backend=backend)


def test_compare_and_replica_lag_read_postgresqls_replicas(lab):
    config, backend = lab
    verdict = compare(("writer", "reader"), rounds=10, max_rounds=10, config=config, backend=backend).verdict()
    assert "PostgreSQL 15 servers" in verdict
    lag = replica_lag(10, config=config, backend=backend)
    summary = lag.summary()
    assert int(summary["errors"].sum()) == 0 and float(summary["max_ms"].max()) < 2000
    assert lag.aurora_status is not None and set(lag.aurora_status["server_id"]) == set(roles(config, backend))


def test_the_web_app_speaks_postgresql_through_the_sandboxs_network(lab):
    config, backend = lab
    app = web_app(config, backend)
    try:
        health = app.health().set_index("endpoint")
        assert health["ok"].all() and not health.loc["writer", "read_only"] and health.loc["reader", "read_only"]
        order = app.add_order("Margaret", product_id=12, quantity=3)
        assert order > 20  # RETURNING id, after the sample orders' keys
        with pytest.raises(ConfigError) as unknown:
            app.add_order("Margaret", product_id=9999, quantity=1)  # 23503: no such product
        assert unknown.value.field == "product_id"
        revoke_rules(config, "sg-db", PORT, backend=backend)
        try:
            broken = app.health().set_index("endpoint")
            assert not broken["ok"].any() and "refused in the sandbox" in broken.loc["writer", "error"]
        finally:
            apply(config, backend, stream=io.StringIO())
        assert app.health()["ok"].all()
    finally:
        app.close()


def test_a_failover_swaps_the_roles_and_loses_no_acknowledged_write(lab):
    config, backend = lab
    before = roles(config, backend)
    report = failover(config=config, backend=backend)
    assert (report.writer_before, report.writer_after) == before
    assert report.lost == [] and report.acknowledged > 0
    assert whoami("writer", config=config, backend=backend)["instance"][0] == before[1]
    assert whoami("reader", config=config, backend=backend)["read_only"].tolist() == [True]


# ----- encryption in transit (the checks are shared with test_tunnel_sandbox: tests/support/tls_checks.py) -----


def test_labkit_sessions_are_encrypted_as_the_server_reports(lab):
    tls_checks.labkit_sessions_are_encrypted(*lab)


def test_a_client_without_tls_is_refused_as_the_parameter_group_says(lab):
    tls_checks.plaintext_is_refused_as_the_group_says(*lab)


def test_a_certificate_for_another_name_or_from_another_ca_is_refused(lab, tmp_path, monkeypatch):
    tls_checks.another_name_or_another_ca_is_refused(*lab, tmp_path, monkeypatch)


def test_the_ca_is_the_homes_own_and_private(lab):
    tls_checks.the_ca_is_the_homes_and_private(*lab)
