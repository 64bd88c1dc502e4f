"""`make lab` (labkit.workbook.lab): JupyterLab starts for root, on loopback, with the printed token; a failed
start leaves no sandbox behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from labkit.workbook import lab


def test_root_gets_allow_root_and_loopback():
    as_root = lab.lab_command("notebooks", 8888, euid=0)
    as_user = lab.lab_command("notebooks", 8888, euid=1000)
    assert "--allow-root" in as_root and "--allow-root" not in as_user
    assert "--ServerApp.ip=127.0.0.1" in as_root and "--ServerApp.port=8888" in as_root


def test_environment_puts_the_venv_first_and_keeps_the_token_off_the_command_line():
    env = lab.lab_environment({"PATH": "/usr/bin:/bin"}, "secret-token")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["JUPYTER_TOKEN"] == "secret-token"
    assert not any("secret-token" in part for part in lab.lab_command("nb", 1, euid=0))


def _wait_for_status(url: str, token: str, process: subprocess.Popen, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"jupyter lab exited with {process.returncode}"
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("jupyter lab did not answer in time")


@pytest.mark.skipif(os.geteuid() != 0, reason="the root case needs root; CI machines run as root")
def test_jupyter_lab_really_starts_as_root_on_loopback(tmp_path):
    """The real server, as root: without --allow-root it refuses and exits 1 (the bug)."""
    port, token = lab.free_port(0), "t0ken-for-the-test"
    env = lab.lab_environment({**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}, token)
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    process = subprocess.Popen(
        lab.lab_command(tmp_path, port, open_browser=False), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        status = _wait_for_status(f"http://127.0.0.1:{port}/api/status", token, process)
        assert "started" in status
        with pytest.raises(urllib.error.HTTPError) as refused:  # the token is the lock
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
        assert refused.value.code == 403
    finally:
        process.terminate()
        process.wait(timeout=30)


def _launch_failing(monkeypatch, tmp_path, running: bool) -> tuple[int, list[str]]:
    """Run the launcher with a JupyterLab that exits 1, the sandbox's up/down recorded."""
    from labkit import sandbox

    calls: list[str] = []

    class State:
        endpoint_url = "http://127.0.0.1:1"

    monkeypatch.setattr(sandbox, "status", lambda: {"running": running})
    monkeypatch.setattr(sandbox, "up", lambda quiet=True: calls.append("up") or State())
    monkeypatch.setattr(sandbox, "down", lambda quiet=True: calls.append("down") or True)
    monkeypatch.setattr(lab, "lab_command", lambda *a, **k: [sys.executable, "-c", "raise SystemExit(1)"])
    return lab.launch(tmp_path, open_browser=False), calls


def test_a_failed_start_stops_the_sandbox_it_started(monkeypatch, tmp_path, capsys):
    assert _launch_failing(monkeypatch, tmp_path, running=False) == (1, ["up", "down"])
    printed = capsys.readouterr()
    assert "http://127.0.0.1:" in printed.out and "token=" in printed.out
    assert "stopped again" in printed.err


def test_a_sandbox_that_was_already_running_is_left_alone(monkeypatch, tmp_path):
    assert _launch_failing(monkeypatch, tmp_path, running=True) == (1, ["up"])
