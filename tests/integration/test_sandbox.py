"""Integration tests of the embedded sandbox: real moto server, real MariaDB, real replication."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymysql
import pytest
from support.sandbox_lab import started_cluster

from labkit import sandbox
from labkit.errors import SandboxError
from labkit.home import labkit_home
from labkit.sandbox.processes import pid_alive
from labkit.sandbox.signing import home_credentials
from labkit.sandbox.state import read_state, state_path

PASSWORD_GIVEN = "Lab-pass-1234"


def _password(backend, cluster: dict) -> str:
    arn = cluster.get("MasterUserSecret", {}).get("SecretArn")
    if not arn:
        return PASSWORD_GIVEN
    return json.loads(backend.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])["password"]


def _connect(backend, endpoint: str, password: str) -> pymysql.Connection:
    host, port = sandbox.resolve(endpoint)
    return pymysql.connect(host=host, port=port, user="admin", password=password, database="shop", autocommit=True)


def _query(conn: pymysql.Connection, sql: str, args: tuple = ()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def _eventually(check, timeout: float = 60.0):  # returns as soon as `check` holds
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except pymysql.err.MySQLError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def test_each_instance_is_its_own_mariadb_process(sandbox_backend):
    started_cluster(sandbox_backend, "procs", readers=2)
    state = read_state()
    assert state is not None
    pids = {i["pid"] for i in state.instances.values()}
    ports = {i["port"] for i in state.instances.values()}
    assert len(pids) == 3 and len(ports) == 3
    assert all(pid_alive(pid) for pid in pids)
    roles = sorted(i["role"] for i in state.instances.values())
    assert roles == ["reader", "reader", "writer"]


def test_reader_endpoint_rotates_over_replicas_per_connection(sandbox_backend):
    cluster = started_cluster(sandbox_backend, "rotate", readers=2)
    ports = {sandbox.resolve(cluster["ReaderEndpoint"])[1] for _ in range(4)}
    state = read_state()
    reader_ports = {i["port"] for i in state.instances.values() if i["role"] == "reader"}
    assert ports == reader_ports


def test_given_master_password_works(sandbox_backend):
    cluster = started_cluster(sandbox_backend, "given", readers=0, managed=False, MasterUserPassword=PASSWORD_GIVEN)
    conn = _connect(sandbox_backend, cluster["Endpoint"], PASSWORD_GIVEN)
    assert _query(conn, "SELECT CURRENT_USER()")[0][0].startswith("admin@")


def test_deleting_the_reader_stops_its_process(sandbox_backend):
    started_cluster(sandbox_backend, "shrink")
    reader = read_state().instances["shrink-reader-1"]
    sandbox_backend.client("rds").delete_db_instance(DBInstanceIdentifier="shrink-reader-1", SkipFinalSnapshot=True)
    sandbox.wait_for_databases(1)
    assert not pid_alive(reader["pid"])
    assert not (Path(os.environ["LABKIT_HOME"]) / "data" / "instances" / "shrink-reader-1").exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", reader["port"])) != 0


def test_reset_wipes_control_plane_and_databases(sandbox_backend):
    started_cluster(sandbox_backend, "wipe")
    pids = [i["pid"] for i in read_state().instances.values()]
    sandbox.reset()
    assert sandbox_backend.client("rds").describe_db_clusters()["DBClusters"] == []
    assert read_state().instances == {}
    assert not any(pid_alive(pid) for pid in pids)


def test_status_json_and_env_from_the_cli(sandbox_backend):
    started_cluster(sandbox_backend, "cli", readers=1)
    out = subprocess.run(
        [sys.executable, "-m", "labkit.cli.main", "sandbox", "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    assert info["running"] is True
    assert info["endpoint_url"].startswith("http://127.0.0.1:")
    assert info["region"] == "us-east-1"
    writer = info["instances"]["cli-writer"]
    assert writer["role"] == "writer" and writer["port"] > 0 and writer["endpoint"].startswith("cli-writer.")
    env = subprocess.run(
        [sys.executable, "-m", "labkit.cli.main", "sandbox", "env"], capture_output=True, text=True, check=True
    ).stdout
    assert f"export AWS_ENDPOINT_URL={info['endpoint_url']}" in env
    credentials = home_credentials(labkit_home())
    assert (
        f"export AWS_SHARED_CREDENTIALS_FILE={credentials.path}" in env and "export AWS_PROFILE=labkit-sandbox" in env
    )
    assert credentials.secret_access_key not in env  # the secret stays in its 0600 file


def test_a_busy_daemon_is_still_the_running_sandbox(sandbox_home):
    """A daemon that takes seconds to answer, as on a loaded machine, is running: `status` says so and `up` reuses
    it, where it used to give up after 2 s and `up` stopped it to start another (issue 27)."""
    state = sandbox.up(quiet=True)

    def busy_for(seconds: float) -> threading.Timer:  # longer than the old 2 s; the daemon answers once resumed
        os.kill(state.daemon_pid, signal.SIGSTOP)
        resume = threading.Timer(seconds, os.kill, (state.daemon_pid, signal.SIGCONT))
        resume.start()
        return resume

    for check in (lambda: sandbox.status()["running"], lambda: sandbox.up(quiet=True).daemon_pid == state.daemon_pid):
        resume = busy_for(3.0)
        try:
            assert check()
        finally:
            resume.join()
    assert read_state().daemon_pid == state.daemon_pid


# ---- lifecycle, each in its own home -------------------------------------------------------------


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_is_idempotent_and_down_leaves_nothing(own_home):
    first = sandbox.up(quiet=True)
    again = sandbox.up(quiet=True)
    assert again.daemon_pid == first.daemon_pid and again.port == first.port
    assert sandbox.down(quiet=True) is True
    assert not pid_alive(first.daemon_pid)
    assert not _listening(first.port)
    assert read_state() is None
    third = sandbox.up(quiet=True)
    assert third.daemon_pid != first.daemon_pid and sandbox.status()["running"]


def test_down_leaves_no_mariadb_process(own_home):
    from labkit.sandbox.backend import SandboxBackend

    sandbox.up(quiet=True)
    started_cluster(SandboxBackend(), "orphans")
    instances = read_state().instances.values()
    sandbox.down(quiet=True)
    assert not any(pid_alive(i["pid"]) for i in instances)
    assert not any(_listening(i["port"]) for i in instances)


def test_stale_state_file_is_recovered(own_home):
    state = sandbox.up(quiet=True)
    os.killpg(state.daemon_pid, 9)  # the daemon and its servers die without cleaning up
    assert _eventually(lambda: not pid_alive(state.daemon_pid))
    assert read_state() is not None and sandbox.status()["running"] is False
    fresh = sandbox.up(quiet=True)
    assert fresh.daemon_pid != state.daemon_pid and sandbox.status()["running"]


def test_missing_mariadb_gives_install_steps(own_home, monkeypatch):
    monkeypatch.setenv("LABKIT_MARIADBD", "/nonexistent/mariadbd")
    with pytest.raises(SandboxError) as error:
        sandbox.up(quiet=True)
    assert error.value.field == "LABKIT_MARIADBD" and "unset it" in str(error.value)
    assert read_state() is None


def test_port_in_use_is_refused_with_a_fix(own_home, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("LABKIT_SANDBOX_PORT", str(busy.getsockname()[1]))
        with pytest.raises(SandboxError) as error:
            sandbox.up(quiet=True)
    assert error.value.field == "LABKIT_SANDBOX_PORT" and "already in use" in str(error.value)


def test_unwritable_home_names_the_variable(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LABKIT_HOME", str(blocker / "home"))
    with pytest.raises(Exception) as error:
        sandbox.up(quiet=True)
    assert "LABKIT_HOME" in str(error.value) and "fix:" in str(error.value)


def test_cli_error_has_no_traceback(tmp_path):
    env = dict(os.environ, LABKIT_HOME=str(tmp_path / "h"), LABKIT_MARIADBD="/nonexistent/mariadbd")
    result = subprocess.run(
        [sys.executable, "-m", "labkit.cli.main", "sandbox", "up"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "LABKIT_MARIADBD" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_endpoint_fails_fast_and_lists_the_known_ones(sandbox_backend):
    started_cluster(sandbox_backend, "known", readers=0)
    started = time.monotonic()
    with pytest.raises(SandboxError) as error:
        sandbox.resolve("typo.cluster-abc.us-east-1.rds.amazonaws.com")
    assert time.monotonic() - started < 10
    assert error.value.field == "endpoint" and "known.cluster-" in str(error.value)


# ---- safe exports (issue #14, item 6) --------------------------------------------------------------


def test_env_exports_round_trip_through_bash_eval_and_a_hostile_region_is_refused(sandbox_home, tmp_path):
    labkit_cli = [sys.executable, "-m", "labkit.cli.main", "sandbox"]
    expected = sandbox.env_exports()
    names = " ".join(f'"${name}"' for name in expected)
    script = f"eval \"$({' '.join(labkit_cli)} env)\"; printf '%s\\0' {names}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, check=True)
    assert done.stdout.decode().split("\0")[:-1] == list(expected.values())

    marker = tmp_path / "pwned"
    for region in (f"us-east-1$(touch {marker})", "us-east-1'\ntouch " + str(marker)):
        env = dict(os.environ, AWS_DEFAULT_REGION=region)
        refused = subprocess.run([*labkit_cli, "up"], capture_output=True, text=True, env=env)
        assert refused.returncode == 2 and "AWS_DEFAULT_REGION" in refused.stderr and "Traceback" not in refused.stderr
        printed = subprocess.run([*labkit_cli, "env", "--region", region], capture_output=True, text=True)
        assert printed.returncode == 2 and printed.stdout == "" and "not an AWS region" in printed.stderr
        subprocess.run(["bash", "-c", 'eval "$1"', "bash", printed.stdout], check=True)
    assert not marker.exists()
    assert sandbox.status()["region"] == "us-east-1"


# ---- one owner per home -------------------------------------------------------------------------------


def _daemons_of(home: Path) -> list[int]:
    """Every live sandbox daemon whose command line names this home (read from /proc, not from labkit)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if (
            b"labkit.sandbox.daemon.main" in args
            and str(home.resolve()).encode() in args
            and pid_alive(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


class _Signal(io.StringIO):
    """stderr that sets `event` once a caller says it waits for another `sandbox up`."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def write(self, text: str) -> int:
        if "waiting for it" in text:
            self.event.set()
        return super().write(text)


def test_two_concurrent_ups_share_one_daemon_and_down_leaves_none(own_home, monkeypatch):
    """The first `up` to decide it must start a daemon waits until the second has decided the same (no lock: both
    start one, the race a learner hit) or says it waits its turn (then it finds the first one's sandbox)."""
    from labkit.sandbox import control

    other_arrived, calls, count = threading.Event(), [], threading.Lock()
    real_check_installed = control.check_installed

    def check_installed() -> None:  # up() calls it once it has found no healthy sandbox, before starting one
        with count:
            calls.append(threading.get_ident())
            first = len(calls) == 1
        if first:
            assert other_arrived.wait(timeout=60), "the second up neither tried to start a daemon nor waited"
        else:
            other_arrived.set()
        real_check_installed()

    monkeypatch.setattr(control, "check_installed", check_installed)
    monkeypatch.setattr(sys, "stderr", _Signal(other_arrived))
    with ThreadPoolExecutor(max_workers=2) as pool:
        states = [f.result() for f in [pool.submit(sandbox.up, quiet=True) for _ in range(2)]]
    assert states[0].daemon_pid == states[1].daemon_pid and states[0].endpoint_url == states[1].endpoint_url
    assert _daemons_of(own_home) == [states[0].daemon_pid]
    assert sandbox.down(quiet=True) is True
    assert _daemons_of(own_home) == [] and read_state() is None


def test_a_second_daemon_for_the_same_home_exits_at_once(own_home):
    state = sandbox.up(quiet=True)
    second = subprocess.run(
        [sys.executable, "-m", "labkit.sandbox.daemon.main", "--home", str(own_home.resolve()), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert second.returncode == 3 and f"pid {state.daemon_pid}" in second.stderr
    assert _daemons_of(own_home) == [state.daemon_pid] and sandbox.status()["running"]
    assert read_state().daemon_pid == state.daemon_pid


def test_down_stops_a_daemon_the_state_file_forgot(own_home):
    state = sandbox.up(quiet=True)
    state_path().unlink()
    assert sandbox.down(quiet=True) is True
    assert not pid_alive(state.daemon_pid) and _daemons_of(own_home) == []
