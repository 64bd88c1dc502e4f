"""The sandbox's own mistakes a reliability probe found (issue 27, item 4): a stale state file's cleaning that
stopped another home's database, a database program that is not mariadbd found only when a lab is made, a log
that grows without end while a server cannot start, a snapshot's way out that broke the rebuilt lab."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from labkit.sandbox import control
from labkit.sandbox.processes import pid_alive, process_args, runs_in_home
from labkit.sandbox.state import SandboxState

SLEEPER = "import time; time.sleep(60)"


@pytest.fixture
def server_of(tmp_path):
    """Start a stand-in for a database server whose command line names `home`'s data directory; stopped after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(home) -> subprocess.Popen[bytes]:
        datadir = f"--datadir={home / 'data' / 'instances' / 'db-1'}"
        process = subprocess.Popen([sys.executable, "-c", SLEEPER, datadir, "--port=3306"])
        started.append(process)
        deadline = time.monotonic() + 30
        while datadir not in process_args(process.pid):  # until exec: before it, /proc shows pytest's arguments
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_cleaning_a_stale_state_file_stops_only_this_homes_servers(tmp_path, server_of):
    """`sandbox up` in ~/lab must not stop ~/lab2's writer, whose pid the stale state file names (a reused pid)."""
    lab, lab2 = tmp_path / "lab", tmp_path / "lab2"
    for home in (lab, lab2):
        home.mkdir()
    other = server_of(lab2)
    ours = server_of(lab)
    stale = SandboxState(
        daemon_pid=0, endpoint_url="http://127.0.0.1:1", port=1, region="us-east-1", home=str(lab), log_file="",
        started_at=0.0, instances={"db-1": {"pid": other.pid}, "db-2": {"pid": ours.pid}},
    )  # fmt: skip
    assert not runs_in_home(other.pid, lab) and runs_in_home(other.pid, lab2) and runs_in_home(ours.pid, lab)
    control._clean_stale(lab, stale)
    assert ours.wait(timeout=10) is not None  # this home's: stopped
    assert pid_alive(other.pid) and other.poll() is None  # the other home's: untouched


def _script(path, text: str):
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: "/bin/false", "exited with code 1"),
        (lambda tmp: _script(tmp / "empty", ""), "cannot be run"),
        (lambda tmp: _script(tmp / "silent", "#!/bin/sh\n"), "printed nothing"),
        (lambda tmp: _script(tmp / "mariadbd", "#!/bin/sh\necho hello\n"), "printed 'hello'"),
    ],
    ids=["bin-false", "empty-file", "silent-script", "not-mariadbd"],
)
def test_a_mariadbd_that_is_not_mariadb_is_refused_at_sandbox_up(tmp_path, monkeypatch, make, words):
    from labkit.errors import SandboxError
    from labkit.sandbox.engines.base import check_installed

    (tmp_path / "mariadb-install-db").write_text("#!/bin/sh\n")  # found beside it, as Debian's is
    (tmp_path / "mariadb-install-db").chmod(0o755)
    monkeypatch.setenv("LABKIT_MARIADBD", str(make(tmp_path)))
    with pytest.raises(SandboxError) as refused:
        check_installed()  # what `sandbox up` runs before it starts anything
    assert refused.value.field == "LABKIT_MARIADBD" and words in refused.value.message
    assert "mariadbd" in (refused.value.fix or "")


def test_a_program_that_passed_is_not_run_again_until_its_file_changes(tmp_path):
    """`sandbox up` checks the engine's programs before each start; the same unchanged file gives the same answer."""
    from labkit.errors import SandboxError
    from labkit.sandbox.engines.base import check_program

    runs = tmp_path / "runs"
    program = _script(tmp_path / "mariadbd", f"#!/bin/sh\necho run >> {runs}\necho 'mariadbd  Ver 11.8.3'\n")
    check = dict(expect="MariaDB", field="LABKIT_MARIADBD", fix="install MariaDB")
    assert check_program([str(program), "--version"], **check) == "mariadbd  Ver 11.8.3"
    assert check_program([str(program), "--version"], **check) == "mariadbd  Ver 11.8.3"
    assert runs.read_text().count("run") == 1, "an unchanged program that passed was run again"
    program.write_text("#!/bin/sh\necho 'something else'\n")  # the same path, now another program
    with pytest.raises(SandboxError, match="printed 'something else'"):
        check_program([str(program), "--version"], **check)


def test_sandbox_up_with_a_false_mariadbd_starts_nothing(lab_home, monkeypatch, capsys):
    from labkit.cli import main as cli_main

    monkeypatch.setenv("LABKIT_MARIADBD", "/bin/false")
    code = cli_main.main(["sandbox", "up"])
    text = capsys.readouterr().err
    assert code == 2 and "LABKIT_MARIADBD" in text and "is not MariaDB's server" in text, text
    assert not (lab_home / "sandbox.json").exists()


def test_an_empty_labkit_mariadbd_is_unset_and_the_real_one_passes(monkeypatch):
    from labkit.sandbox.engines.mariadb import MariaDBEngine

    monkeypatch.setenv("LABKIT_MARIADBD", "")
    engine = MariaDBEngine()
    engine.check_installed()
    assert "MariaDB" in engine.version()


def test_a_failure_repeated_every_pass_is_logged_in_full_once_then_a_line_a_minute(caplog):
    """A server that cannot start failed every pass with a traceback: the log grew ~95 KB a minute."""
    import logging

    from labkit.sandbox.daemon.failures import FailureLog

    now = [0.0]
    failures = FailureLog(logging.getLogger("labkit.test.failures"), every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="labkit.test.failures"):
        for second in range(0, 600, 2):  # ten minutes of a pass every 2 s, each failing the same way
            now[0] = float(second)
            try:
                raise RuntimeError("MariaDB bootstrap failed (see template.log)\n  fix: install MariaDB")
            except RuntimeError:
                failures.exception("reconcile failed")
        try:
            raise ValueError("another cause")
        except ValueError:
            failures.exception("reconcile failed")  # a new failure is reported at once, in full
    records = caplog.records
    assert sum(1 for r in records if r.exc_info) == 2  # one traceback per distinct failure
    assert len(records) <= 2 + 10  # and at most a line a minute for the repeats
    assert "times in the last 60 s" in records[1].getMessage()
    assert sum(len(r.getMessage()) for r in records) < 3000


def test_without_a_saved_control_plane_the_old_database_records_are_moved_aside_never_deleted(tmp_path):
    """The snapshot error's way out (move control-plane.snapshot aside) must leave a working lab: the old records
    named the rebuilt lab's instances and its cluster as bootstrapped, so its new managed password never reached
    the database ('Access denied')."""
    import json

    from labkit.sandbox.daemon.reconciler import RECORDS_FILE, Reconciler

    data = tmp_path / "data"
    (data / "instances" / "lab-db-1").mkdir(parents=True)
    (data / "instances" / "lab-db-1" / "ibdata1").write_text("the old lab's rows")
    saved = {"servers": {"lab-db-1": {"server_id": 1, "port": 4000}}, "bootstrapped": ["lab-cluster"]}
    (data / RECORDS_FILE).write_text(json.dumps({**saved, "next_server_id": 2}))

    def make(restored: bool) -> Reconciler:
        return Reconciler(data, "admin", list, lambda rds, cluster: "pw", "repl", control_plane_restored=restored)

    assert make(True).bootstrapped == {"lab-cluster"}  # a restored control plane keeps its records
    fresh = make(False)
    assert fresh.bootstrapped == set() and fresh.records == {}
    assert not (data / RECORDS_FILE).exists()
    kept = list((data / "orphans").glob(f"{RECORDS_FILE}-*"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["bootstrapped"] == ["lab-cluster"]
    assert (data / "instances" / "lab-db-1" / "ibdata1").read_text() == "the old lab's rows"  # data untouched
