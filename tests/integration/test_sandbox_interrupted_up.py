"""An `up` whose sandbox dies under it (`kill -9` of the daemon) resumes cleanly wherever it was killed: the
interrupted command says what happened and how to carry on (no traceback), and after `sandbox up` the same `up`
finishes the lab, whose databases take the cluster's own password.

Its own LABKIT home (and so its own daemon): it kills the daemon on purpose, at three points of one lab's
creation, each in a later run of the same `up`: while the network is made, as the cluster is created, and as its
writer is.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from labkit import sandbox
from labkit.config import LabConfig
from labkit.lab.graph import lab_graph
from labkit.sandbox.processes import pid_alive
from labkit.sandbox.state import read_state

KILL_POINTS = (r"\]\s+vpc\s+created", r"\]\s+cluster\s+create \.\.\.", r"\]\s+db-1\s+create \.\.\.")


def _labkit(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit.cli.main", *args], capture_output=True, text=True, timeout=timeout
    )


def _up_killed_at(pattern: str) -> tuple[int, str]:
    """`labkit up --yes`, with the daemon killed (-9) as soon as the progress shows `pattern`; (exit code, output)."""
    state = read_state()
    assert state is not None
    up = subprocess.Popen(
        [sys.executable, "-m", "labkit.cli.main", "up", "--yes"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    assert up.stdout is not None
    for line in up.stdout:
        lines.append(line)
        if re.search(pattern, line) and pid_alive(state.daemon_pid):
            os.kill(state.daemon_pid, signal.SIGKILL)
    output = "".join(lines)
    assert not pid_alive(state.daemon_pid), f"the run never reached {pattern!r}:\n{output}"
    return up.wait(timeout=120), output


def test_an_up_interrupted_by_a_dead_sandbox_resumes_wherever_it_was_killed(own_home):
    sandbox.up(quiet=True)
    for pattern in KILL_POINTS:
        code, output = _up_killed_at(pattern)
        assert code in (1, 3) and "Traceback" not in output, output
        assert "labkit sandbox up" in output or "run apply again" in output, output  # what to do next
        sandbox.up(quiet=True)
    done = _labkit("up", "--yes")
    assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert f"{len(lab_graph(LabConfig()))} in the lab" in done.stdout + done.stderr  # every node, once
    sandbox.wait_for_databases(2)
    for role in ("writer", "reader"):  # the databases were bootstrapped with the password the secret holds
        answer = _labkit("sql", "SELECT 41 + 1 AS answer", "--on", role)
        assert answer.returncode == 0 and "42" in answer.stdout, answer.stdout + answer.stderr
