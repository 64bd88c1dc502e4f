"""Tunnels, engines and SQL against a real sandbox: Session Manager calls answered by the sandbox's control
plane, the sandbox's session plugin forwarding to real MariaDB, and refusing what the security groups block."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pymysql
import pytest
from botocore.exceptions import ClientError
from support import tls_checks
from support.sandbox_lab import (
    replication_paused,
    resume_replication_after,
    rotate_master_password,
    sandbox_lab,
)

from labkit.access.lookup import running_instance
from labkit.access.schema import create_schema
from labkit.access.sql import READ_YOUR_WRITES_SECONDS, close_engines, credentials, engine, sql, whoami
from labkit.access.tunnel import close_all, tunnel
from labkit.access.tunnel.readiness import SSM_POLICY_ARN
from labkit.aws.tags import NODE_FIRST_DB, db_instance_node, resource_name
from labkit.cli.sql import option_file
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home
from labkit.lab.apply import apply
from labkit.lab.resources.database import DATABASE_NAME
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.tls import write_sysbench_files
from labkit.security import revoke_rules

LAB, LEARNER = "sqllab", "ana"


@pytest.fixture(scope="module")
def lab(sandbox_home):
    """One lab (writer + reader + instance) for the module; tests that break it put it back."""
    yield sandbox_lab(LAB, LEARNER)
    close_engines()
    close_all()


def _instance_id(backend: SandboxBackend) -> str:
    return running_instance(backend, config=LabConfig(lab=LAB, learner=LEARNER))


def _sessions(backend: SandboxBackend, state: str) -> list[dict]:
    return backend.client("ssm").describe_sessions(State=state)["Sessions"]


WAIT_SECONDS = 60.0  # what a process or the API must do in time: generous, so a busy machine passes; a leak never does


def _group_gone(pgid: int, timeout: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _wait_for(predicate, timeout: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# ----- the tunnel -----


def test_tunnel_opens_a_session_and_ends_it_on_close(lab):
    config, backend = lab
    with tunnel("writer", config=config, backend=backend) as opened:
        assert opened.is_open
        assert opened.address == f"127.0.0.1:{opened.port}"
        active = [s for s in _sessions(backend, "Active") if s["SessionId"] == opened.session_id]
        assert active and active[0]["Target"] == _instance_id(backend)
        assert active[0]["DocumentName"] == "AWS-StartPortForwardingSessionToRemoteHost"
        group = opened._process.pid
        secret = credentials(config, backend)
        connection = pymysql.connect(host="127.0.0.1", port=opened.port, user=secret.username, password=secret.password)
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT @@report_host")
            assert cursor.fetchone()[0] == f"{LAB}-{LEARNER}-db-1"
    assert not opened.is_open
    assert _group_gone(group)
    assert opened.session_id not in {s["SessionId"] for s in _sessions(backend, "Active")}
    ended = [s for s in _sessions(backend, "History") if s["SessionId"] == opened.session_id]
    assert ended and ended[0]["Status"] == "Terminated"
    opened.close()  # twice is harmless


def test_open_and_close_form_and_a_requested_port(lab):
    config, backend = lab
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    opened = tunnel("reader", free, config=config, backend=backend).open()
    try:
        assert opened.port == free
        with pytest.raises(ConfigError) as taken:
            tunnel("writer", free, config=config, backend=backend).open()
        assert taken.value.field == "local_port"
    finally:
        opened.close()


def test_bad_targets_fail_before_any_call(lab):
    config, backend = lab
    with pytest.raises(ConfigError) as no_port:
        tunnel("i-0123456789abcdef0", config=config, backend=backend)
    assert no_port.value.field == "remote_port"
    with pytest.raises(ConfigError) as low_port:
        tunnel("writer", 80, config=config, backend=backend)
    assert low_port.value.field == "local_port"
    with pytest.raises(LabkitError) as unknown:
        tunnel("no-such-db", config=config, backend=backend).open()
    assert unknown.value.field == "to"


def test_readiness_decides_online_and_start_session(lab):
    config, backend = lab
    instance_id = _instance_id(backend)
    ssm, iam = backend.client("ssm"), backend.client("iam")
    online = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
    assert [i["PingStatus"] for i in online["InstanceInformationList"]] == ["Online"]
    role = f"{LAB}-{LEARNER}-iam-role"
    iam.detach_role_policy(RoleName=role, PolicyArn=SSM_POLICY_ARN)
    try:
        offline = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
        assert offline["InstanceInformationList"] == []
        with pytest.raises(ClientError) as refused:
            ssm.start_session(
                Target=instance_id,
                DocumentName="AWS-StartPortForwardingSessionToRemoteHost",
                Parameters={"host": ["x"], "portNumber": ["3306"], "localPortNumber": ["0"]},
            )
        assert refused.value.response["Error"]["Code"] == "TargetNotConnected"
        started = time.monotonic()
        with pytest.raises(LabkitError) as diagnosed:
            tunnel("writer", config=config, backend=backend).open()
        assert time.monotonic() - started < 5
        assert "AmazonSSMManagedInstanceCore" in str(diagnosed.value)
        assert "attach-role-policy" in diagnosed.value.fix
    finally:
        iam.attach_role_policy(RoleName=role, PolicyArn=SSM_POLICY_ARN)
    with tunnel("writer", config=config, backend=backend) as reopened:
        assert reopened.is_open


def test_a_revoked_rule_refuses_new_connections_and_says_why(lab):
    config, backend = lab
    secret = credentials(config, backend)
    with tunnel("writer", config=config, backend=backend) as opened:
        kept = pymysql.connect(host="127.0.0.1", port=opened.port, user=secret.username, password=secret.password)
        revoke_rules(config, "sg-db", 3306, backend=backend)
        try:
            with pytest.raises(pymysql.err.OperationalError):
                pymysql.connect(
                    host="127.0.0.1", port=opened.port, user=secret.username, password=secret.password,
                    connect_timeout=5, read_timeout=5,
                )  # fmt: skip
            assert "BLOCKED at security group ingress" in (opened.recent_refusal() or "")
            with kept.cursor() as cursor:  # an established connection lives on, as security groups are stateful
                cursor.execute("SELECT 1")
            with pytest.raises(LabkitError) as explained:
                whoami("writer", config=config, backend=backend)
            assert explained.value.field == "security groups"
            assert "can_reach" in explained.value.fix
        finally:
            kept.close()
            apply(config, backend, stream=io.StringIO())  # converges the rule back
    assert whoami("writer", config=config, backend=backend)["instance"][0] == f"{LAB}-{LEARNER}-db-1"


# ----- SQL -----


def test_whoami_names_the_instance_and_its_role(lab):
    config, backend = lab
    writer = whoami("writer", config=config, backend=backend).iloc[0]
    reader = whoami("reader", config=config, backend=backend).iloc[0]
    assert (writer["instance"], bool(writer["read_only"])) == (f"{LAB}-{LEARNER}-db-1", False)
    assert (reader["instance"], bool(reader["read_only"])) == (f"{LAB}-{LEARNER}-db-2", True)
    assert ".cluster-ro-" in reader["endpoint"] and ".cluster-" in writer["endpoint"]


def test_schema_then_write_on_writer_and_read_on_reader(lab):
    config, backend = lab
    first = create_schema(config=config, backend=backend)
    again = create_schema(config=config, backend=backend)
    assert dict(zip(first["table"], first["rows"], strict=True)) == {"products": 100, "orders": 20}
    assert again.equals(first)
    hostile = "Robert'); DROP TABLE orders;--"
    inserted = sql(
        "INSERT INTO orders (product_id, customer, quantity) VALUES (:product, :customer, :quantity)",
        params={"product": 7, "customer": hostile, "quantity": 2},
        config=config,
        backend=backend,
    )
    assert inserted["rows_affected"].tolist() == [1]

    def reader_sees_it() -> bool:
        found = sql(
            "SELECT customer FROM orders WHERE customer = :c",
            on="reader",
            params={"c": hostile},
            config=config,
            backend=backend,
        )
        return found["customer"].tolist() == [hostile]

    assert _wait_for(reader_sees_it, 5)
    assert sql("SELECT COUNT(*) AS n FROM orders", on="reader", config=config, backend=backend)["n"][0] == 21


def test_a_write_on_the_reader_is_refused_with_the_reason(lab):
    config, backend = lab
    create_schema(config=config, backend=backend)
    with pytest.raises(LabkitError) as refused:
        sql("DELETE FROM orders", on="reader", config=config, backend=backend)
    assert "read-only" in refused.value.message
    assert "writer" in refused.value.fix
    assert sql("SELECT COUNT(*) AS n FROM orders", config=config, backend=backend)["n"][0] >= 20


def test_the_password_is_never_shown(lab, capsys):
    config, backend = lab
    password = credentials(config, backend).password
    made = engine("writer", config=config, backend=backend)
    shown = [
        repr(made),
        str(made.url),
        repr(credentials(config, backend)),
        whoami("writer", config=config, backend=backend).to_string(),
    ]
    with tunnel("reader", config=config, backend=backend) as opened:
        shown += [repr(opened), str(opened.target)]
    assert all(password not in text for text in shown)
    assert "***" in repr(made)
    assert password not in capsys.readouterr().out


# ----- the tunnel's lifetime is the owner's -----

OWNER = textwrap.dedent(
    """
    import json, sys, time
    from labkit.config import LabConfig
    from labkit.access.tunnel import tunnel
    opened = tunnel("writer", config=LabConfig(lab=sys.argv[1], learner=sys.argv[2])).open()
    print(json.dumps({"group": opened._process.pid, "session": opened.session_id}), flush=True)
    if sys.argv[3] == "wait":
        time.sleep(600)
    """
)


# In the guard only: once the owner is gone, importing boto3, botocore or labkit fails, as it would take seconds
# on a busy machine. A guard that prepares its SSM client while the owner lives never notices.
NO_LATE_IMPORTS = textwrap.dedent(
    """
    import os, sys
    if any(arg.endswith("guard.py") for arg in sys.orig_argv):
        owner = int(sys.orig_argv[sys.orig_argv.index("--owner") + 1])

        class NoImportAfterTheOwner:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("boto3", "botocore", "labkit") and os.getppid() != owner:
                    raise ImportError(f"{name} imported after the tunnel's owner died")
                return None

        sys.meta_path.insert(0, NoImportAfterTheOwner())
    """
)


def _run_owner(ending: str, **env: str) -> tuple[subprocess.Popen[str], dict]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, LAB, LEARNER, "wait" if ending == "kill" else "exit"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip
    return owner, json.loads(owner.stdout.readline())


@pytest.mark.parametrize("ending", ["exit", "kill"])
def test_nothing_outlives_the_process_that_opened_the_tunnel(lab, ending):
    _, backend = lab
    owner, opened = _run_owner(ending)
    if ending == "kill":
        owner.send_signal(signal.SIGKILL)
    owner.wait(30)
    assert _group_gone(opened["group"])
    assert _wait_for(lambda: opened["session"] not in {s["SessionId"] for s in _sessions(backend, "Active")})


def test_the_guard_ends_the_session_with_nothing_left_to_load(lab, tmp_path):
    """The guard has everything it needs to end the session before the tunnel is open (issue 27): it imports
    nothing heavy after the owner dies, so a busy machine cannot leave the session open for long."""
    _, backend = lab
    (tmp_path / "sitecustomize.py").write_text(NO_LATE_IMPORTS)
    owner, opened = _run_owner("kill", PYTHONPATH=str(tmp_path))
    owner.send_signal(signal.SIGKILL)
    owner.wait(30)
    assert _group_gone(opened["group"])
    assert _wait_for(lambda: opened["session"] not in {s["SessionId"] for s in _sessions(backend, "Active")})


# ----- real clients -----


def test_the_mariadb_client_works_through_a_tunnel(lab, tmp_path):
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        pytest.skip("no mariadb client on this machine (make setup installs it)")
    config, backend = lab
    stale = tmp_path / "tunnels" / "writer-1.cnf"  # left by a killed tunnel: nothing listens on port 1
    stale.parent.mkdir()
    stale.write_text("[client]\npassword=old\n")
    with tunnel("reader", config=config, backend=backend) as opened:
        live = tmp_path / "tunnels" / f"other-{opened.port}.cnf"  # its port is held: a live tunnel's file
        live.write_text("[client]\n")
        options = option_file(tmp_path, opened, credentials(config, backend), DATABASE_NAME)
        assert options.stat().st_mode & 0o777 == 0o600
        assert not stale.exists() and live.exists()
        result = subprocess.run(
            [client, f"--defaults-extra-file={options}", "-N", "-e", "SELECT @@report_host, @@read_only"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"{LAB}-{LEARNER}-db-2", "1"]


def test_sysbench_works_through_a_tunnel(lab, tmp_path):
    if shutil.which("sysbench") is None:
        pytest.skip("no sysbench on this machine (make setup installs it)")
    config, backend = lab
    secret = credentials(config, backend)
    folder = write_sysbench_files(labkit_home() / "data", tmp_path)  # the lab requires TLS
    with tunnel("writer", config=config, backend=backend) as opened:
        common = [
            "oltp_point_select", "--db-driver=mysql", "--mysql-ssl=on", "--mysql-host=127.0.0.1", f"--mysql-port={opened.port}",
            f"--mysql-user={secret.username}", f"--mysql-password={secret.password}", f"--mysql-db={DATABASE_NAME}",
            "--tables=1", "--table-size=200", "--threads=1",
        ]  # fmt: skip
        steps = {
            name: subprocess.run(
                ["sysbench", *common, *extra, name], capture_output=True, text=True, timeout=60, cwd=folder
            )
            for name, extra in (("prepare", []), ("run", ["--time=1"]), ("cleanup", []))
        }
    for name, result in steps.items():
        assert result.returncode == 0, f"sysbench {name}: {result.stderr}"
    queries = int(next(line for line in steps["run"].stdout.splitlines() if "queries:" in line).split()[1])
    assert queries > 10


# ----- the command line -----


def test_cli_tunnel_prints_how_to_connect_and_closes_on_interrupt(lab):
    config, backend = lab
    password = credentials(config, backend).password
    before = {s["SessionId"] for s in _sessions(backend, "Active")}
    labkit = Path(sys.executable).with_name("labkit")
    held = subprocess.Popen(
        [str(labkit), "tunnel", "writer", "--lab", LAB, "--learner", LEARNER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as a background job of make starts it
    )  # fmt: skip
    lines = []
    for line in held.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    text = "".join(lines)
    options = Path(next(line for line in lines if "--defaults-extra-file=" in line).split("=", 1)[1].split()[0])
    assert "port " in text and "user     admin" in text and "get-secret-value" in text
    assert password not in text
    assert options.exists() and options.stat().st_mode & 0o777 == 0o600
    held.send_signal(signal.SIGINT)
    assert held.wait(30) == 0
    assert not options.exists()
    assert {s["SessionId"] for s in _sessions(backend, "Active")} == before


def test_cli_sql_prints_the_result_table(lab):
    config, backend = lab
    create_schema(config=config, backend=backend)
    labkit = Path(sys.executable).with_name("labkit")
    result = subprocess.run(
        [str(labkit), "sql", "SELECT COUNT(*) AS products FROM products", "--on", "reader", "--lab", LAB, "--learner", LEARNER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["products", "100"]
    refused = subprocess.run(
        [str(labkit), "sql", "DELETE FROM orders", "--on", "reader", "--lab", LAB, "--learner", LEARNER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "read-only" in refused.stderr + refused.stdout
    assert "--on writer" in refused.stderr and "on='writer'" not in refused.stderr, "the fix names the flag"


def test_a_read_on_the_reader_sees_what_this_process_just_wrote_on_the_writer(lab):
    config, backend = lab
    create_schema(config=config, backend=backend)
    reader = resource_name(config.lab, config.learner, db_instance_node(2))
    with replication_paused(reader):
        timer = resume_replication_after(reader, 0.8)  # the replica applies the write 0.8 s after it commits
        sql(
            "INSERT INTO orders (product_id, customer, quantity) VALUES (7, 'Barbara', 2)",
            config=config,
            backend=backend,
        )
        started = time.monotonic()
        rows = sql("SELECT customer FROM orders ORDER BY id DESC LIMIT 1", on="reader", config=config, backend=backend)
        waited = time.monotonic() - started
        timer.join()
    assert rows["customer"].tolist() == ["Barbara"], "the reader answered before it had the write"
    assert waited >= 0.5


def test_a_reader_that_does_not_catch_up_delays_a_read_by_a_bounded_wait_only(lab):
    config, backend = lab
    create_schema(config=config, backend=backend)
    reader = resource_name(config.lab, config.learner, db_instance_node(2))
    with replication_paused(reader):
        sql("INSERT INTO orders (product_id, customer, quantity) VALUES (7, 'Ken', 1)", config=config, backend=backend)
        started = time.monotonic()
        rows = sql("SELECT customer FROM orders ORDER BY id DESC LIMIT 1", on="reader", config=config, backend=backend)
        waited = time.monotonic() - started
    assert rows["customer"].tolist() != ["Ken"], "replication was paused: reads stay eventual past the wait"
    assert READ_YOUR_WRITES_SECONDS - 0.1 <= waited < READ_YOUR_WRITES_SECONDS + 2


def test_sql_reads_a_rotated_secret_again(lab):
    config, backend = lab
    assert sql("SELECT 1 AS one", config=config, backend=backend)["one"].tolist() == [1]  # an engine is cached
    rotate_master_password(config, backend, resource_name(config.lab, config.learner, NODE_FIRST_DB))
    engine("writer", config=config, backend=backend).dispose()  # the pool's next connection logs in anew
    assert sql("SELECT 2 AS two", config=config, backend=backend)["two"].tolist() == [2]
    assert sql("SELECT 3 AS three", on="reader", config=config, backend=backend)["three"].tolist() == [3]


# ----- encryption in transit (the checks are shared with test_postgresql_client: tests/support/tls_checks.py) -----


def test_labkit_sessions_are_encrypted_as_the_server_reports(lab):
    tls_checks.labkit_sessions_are_encrypted(*lab)


def test_a_client_without_tls_is_refused_as_the_parameter_group_says(lab):
    tls_checks.plaintext_is_refused_as_the_group_says(*lab)


def test_a_certificate_for_another_name_or_from_another_ca_is_refused(lab, tmp_path, monkeypatch):
    tls_checks.another_name_or_another_ca_is_refused(*lab, tmp_path, monkeypatch)


def test_the_ca_is_the_homes_own_and_private(lab):
    tls_checks.the_ca_is_the_homes_and_private(*lab)
