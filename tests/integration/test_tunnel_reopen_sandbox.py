"""sql() and engine() on the real sandbox reopen a tunnel whose session plugin has exited (issue 15, item 4).

The plugin process is killed for real (what is left when Session Manager ends an idle session: no plugin, a
dead local port); the next call must reopen the tunnel once and say so, not fail until a kernel restart.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import text
from support.sandbox_lab import sandbox_lab

from labkit.access.sql import close_engines, engine, lab_engine, sql
from labkit.access.tunnel import close_all, find_open

LAB, LEARNER = "reopenlab", "rex"


@pytest.fixture(scope="module")
def lab(sandbox_home):
    yield sandbox_lab(LAB, LEARNER)
    close_engines()
    close_all()


def kill_plugin(tunnel) -> None:
    """Kill the session plugin under the tunnel's guard (a real exit), and wait for the guard to follow it."""
    guard = tunnel._process.pid
    children = Path(f"/proc/{guard}/task/{guard}/children").read_text().split()
    assert children, "the guard runs the plugin as its child"
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    tunnel._process.wait(10)
    assert tunnel.ended


def test_sql_and_engine_reopen_a_tunnel_whose_plugin_exited(lab, capsys):
    config, backend = lab
    assert sql("SELECT 1 AS one", config=config, backend=backend)["one"].tolist() == [1]
    tunnel = lab_engine("writer", config=config, backend=backend).tunnel
    port = tunnel.port
    kill_plugin(tunnel)
    capsys.readouterr()

    assert sql("SELECT 2 AS two", config=config, backend=backend)["two"].tolist() == [2]
    said = capsys.readouterr().out
    assert said.count("tunnel to writer:") == 1 and f"reopened at 127.0.0.1:{port}" in said
    assert lab_engine("writer", config=config, backend=backend).tunnel is tunnel and tunnel.is_open

    kill_plugin(tunnel)
    with engine("writer", config=config, backend=backend).connect() as connection:
        assert connection.execute(text("SELECT 3")).scalar() == 3
    assert "reopened at" in capsys.readouterr().out

    kill_plugin(tunnel)
    assert find_open("writer", config, backend) is tunnel and tunnel.is_open, "never a dead tunnel"


def test_sql_reopens_after_the_sandboxes_idle_timeout_and_says_why(lab, capsys, monkeypatch):
    """The sandbox's plugin ends an idle session as Session Manager does (LABKIT_SSM_IDLE_TIMEOUT seconds)."""
    config, backend = lab
    close_engines()
    close_all()
    monkeypatch.setenv("LABKIT_SSM_IDLE_TIMEOUT", "1")
    assert sql("SELECT 1 AS one", config=config, backend=backend)["one"].tolist() == [1]
    tunnel = lab_engine("writer", config=config, backend=backend).tunnel
    tunnel._process.wait(30)  # the plugin exits after a second of silence; the guard follows it
    assert tunnel.ended
    capsys.readouterr()
    monkeypatch.setenv("LABKIT_SSM_IDLE_TIMEOUT", "1200")
    assert sql("SELECT 2 AS two", config=config, backend=backend)["two"].tolist() == [2]
    said = capsys.readouterr().out
    assert (
        "tunnel to writer: the Session Manager session ended (Session Manager ends a port forward after 20 idle" in said
    )


def test_an_engine_in_the_learners_hands_survives_a_rotated_password(lab):
    """engine() baked the password into its URL: after RDS rotated the secret, each new connection of the
    learner's own engine failed with 1045 until a kernel restart (sql() alone read the secret again)."""
    from support.sandbox_lab import rotate_master_password

    from labkit.access.sql import whoami

    config, backend = lab
    made = engine("writer", config=config, backend=backend)
    with made.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    rotate_master_password(config, backend, f"{LAB}-{LEARNER}-db-1")
    made.dispose()  # the pooled connections go (as idle ones do over days); new ones need the new password
    with made.connect() as connection:
        assert connection.execute(text("SELECT 4")).scalar() == 4
    assert whoami("writer", config=config, backend=backend)["instance"][0] == f"{LAB}-{LEARNER}-db-1"
