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
    config_file = lab.jupyter_config(tmp_path / "home")
    process = subprocess.Popen(
        lab.lab_command(tmp_path, port, open_browser=False, config_file=config_file), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        status = _wait_for_status(f"http://127.0.0.1:{port}/api/status", token, process)
        assert "started" in status
        notification = "@jupyterlab/apputils-extension:notification"
        settings = _wait_for_status(f"http://127.0.0.1:{port}/lab/api/settings/{notification}", token, process)
        defaults = settings["schema"]["properties"]  # the overrides are the defaults this server serves
        assert defaults["fetchNews"]["default"] == "false", "no news prompt over the notebook (issue 23)"
        assert lab.running_lab(tmp_path, str(tmp_path / "runtime")) == lab.lab_url(port, token)
        with pytest.raises(urllib.error.HTTPError) as refused:  # the token is the lock
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
        assert refused.value.code == 403
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_terminals_keep_the_venv_first_even_after_a_login_profile_resets_path(tmp_path):
    """Issue 23: JupyterLab started without a TTY runs login shells in its terminals; /etc/profile (here a
    ~/.profile doing the same) resets PATH, and `labkit` was not found."""
    home = tmp_path / "user"
    home.mkdir()
    (home / ".profile").write_text("export PATH=/usr/bin:/bin\n")  # what Debian's /etc/profile does for root
    venv_bin = str(Path(sys.executable).parent)
    env = {"HOME": str(home), "PATH": f"{venv_bin}:/usr/bin:/bin", "TERM": "dumb"}
    config = json.loads(lab.jupyter_config(tmp_path / "labkit-home").read_text())
    shell = config["ServerApp"]["terminado_settings"]["shell_command"]

    def labkit_found(command: list[str]) -> str:
        run = subprocess.run(command, input="command -v labkit\nexit\n", env=env, capture_output=True, text=True,
                             timeout=30, start_new_session=True)  # fmt: skip
        return run.stdout.strip()

    assert labkit_found(["bash", "-l"]) == "", "JupyterLab's default (a login shell) loses the venv"
    assert labkit_found(shell) == str(Path(venv_bin) / "labkit")


def test_a_second_launch_points_at_the_running_jupyterlab_instead_of_a_new_port(monkeypatch, tmp_path, capsys):
    """Issue 23: a second `make lab` started another JupyterLab on a random port."""
    from labkit import sandbox

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    info = {"pid": os.getpid(), "port": 8890, "token": "tok", "hostname": "127.0.0.1", "root_dir": str(tmp_path)}
    (runtime / f"jpserver-{os.getpid()}.json").write_text(json.dumps(info))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))

    class State:
        endpoint_url = "http://127.0.0.1:1"

    monkeypatch.setattr(sandbox, "status", lambda: {"running": True})
    monkeypatch.setattr(sandbox, "up", lambda quiet=True: State())
    monkeypatch.setattr(lab, "lab_command", lambda *a, **k: pytest.fail("a second JupyterLab was started"))
    assert lab.launch(tmp_path, open_browser=False) == 0
    assert "already running" in capsys.readouterr().out and "http://127.0.0.1:8890/lab?token=tok" in lab.running_lab(
        tmp_path
    )
    assert lab.running_lab(tmp_path / "elsewhere") is None


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


def test_a_failed_start_stops_the_sandbox_it_started(monkeypatch, tmp_path, capsys, lab_home):
    assert _launch_failing(monkeypatch, tmp_path, running=False) == (1, ["up", "down"])
    printed = capsys.readouterr()
    assert "http://127.0.0.1:" in printed.out and "token=" in printed.out
    assert "stopped again" in printed.err


def test_a_sandbox_that_was_already_running_is_left_alone(monkeypatch, tmp_path, lab_home):
    assert _launch_failing(monkeypatch, tmp_path, running=True) == (1, ["up"])
