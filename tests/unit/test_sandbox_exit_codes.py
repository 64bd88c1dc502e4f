"""Every command that needs the sandbox exits 3 when it is not running, naming the command that starts it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMMANDS = [["sandbox", "status"], ["sandbox", "env"], ["plan"], ["rules"], ["status"], ["sql", "SELECT 1"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_a_stopped_sandbox_exits_3_with_the_fix(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_BACKEND"} | {"LABKIT_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "labkit.cli.main", *command], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not running" in result.stdout + result.stderr and "labkit sandbox up" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_up_starts_a_new_log_beyond_its_size_and_keeps_one_previous(tmp_path):
    from labkit.sandbox.control import _rotated

    log = tmp_path / "sandbox.log"
    log.write_text("x" * 100)
    assert _rotated(log, keep_bytes=1000) == log and log.read_text() == "x" * 100  # small: kept
    assert _rotated(log, keep_bytes=10) == log
    assert not log.exists() and (tmp_path / "sandbox.log.1").read_text() == "x" * 100
