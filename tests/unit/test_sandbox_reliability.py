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
