"""Session Manager's idle timeout on sandbox tunnels: a session with no traffic ends as on AWS, a busy one does not.

AWS ends a session after the account's idle session timeout (20 minutes by default); session-manager-plugin
then prints `Exiting session with sessionId: ID.` and exits 0. The sandbox's plugin does the same after
LABKIT_SSM_IDLE_TIMEOUT seconds, read from the environment of the process that opens the tunnel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pymysql
import pytest
from support.sandbox_lab import sandbox_lab

from labkit.access.lookup import running_instance
from labkit.access.sql import close_engines, credentials
from labkit.access.tunnel import close_all, tunnel
from labkit.errors import LabkitError
from labkit.sandbox.procs import settings as plugin_settings

LAB, LEARNER = "idlelab", "ida"
IDLE_ENV = "LABKIT_SSM_IDLE_TIMEOUT"


@pytest.fixture(scope="module")
def lab(sandbox_home):
    yield sandbox_lab(LAB, LEARNER)
    close_engines()
    close_all()


def _exit_time(opened, timeout: float = 60.0) -> float | None:
    """When the tunnel's plugin was seen to have exited (monotonic), or None if it is still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if opened._process.poll() is not None:
            return time.monotonic()
        time.sleep(0.02)
    return None


def _output(opened) -> list[str]:
    for reader in opened._readers:  # the plugin exited: its pipes reach EOF
        reader.join(5.0)
    return list(opened._output)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _query(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_an_idle_tunnel_ends_like_a_session_manager_session(lab, monkeypatch):
    config, backend = lab
    timeout = 3.0  # the silence it ends after; opening, then connecting, is well within it even on a busy machine
    monkeypatch.setenv(IDLE_ENV, str(timeout))
    secret = credentials(config, backend)  # before the tunnel: an API call, as slow as the machine is busy
    opened = tunnel("writer", config=config, backend=backend).open()
    try:
        before_last_traffic = time.monotonic()
        with pymysql.connect(
            host="127.0.0.1", port=opened.port, user=secret.username, password=secret.password
        ) as connection:
            _query(connection)
        ended = _exit_time(opened)
        assert ended is not None, "the plugin is still running after 60 s of silence"
        assert ended - before_last_traffic >= timeout  # never before the timeout
        assert opened._process.returncode == 0
        assert f"Exiting session with sessionId: {opened.session_id}." in _output(opened)
        assert _port_free(opened.port)  # the listener is closed
        history = backend.client("ssm").describe_sessions(State="History")["Sessions"]
        assert any(s["SessionId"] == opened.session_id and s["Status"] == "Terminated" for s in history)
    finally:
        opened.close()


def test_a_busy_tunnel_stays_open_then_times_out_when_left_alone(lab, monkeypatch):
    config, backend = lab
    timeout = 3.0
    monkeypatch.setenv(IDLE_ENV, str(timeout))
    secret = credentials(config, backend)  # before the tunnel, as above
    opened = tunnel("writer", config=config, backend=backend).open()
    try:
        connection = pymysql.connect(host="127.0.0.1", port=opened.port, user=secret.username, password=secret.password)
        busy_until = time.monotonic() + 2.5 * timeout
        while time.monotonic() < busy_until:  # a query every 0.2 s: never close to 3 s of silence
            _query(connection)
            assert opened.is_open
            time.sleep(0.2)
        _query(connection)
        left_alone = time.monotonic()
        ended = _exit_time(opened)
        assert ended is not None and ended - left_alone >= timeout - 0.5
        assert opened._process.returncode == 0
        with pytest.raises(pymysql.err.OperationalError):  # the session's connections end with it
            _query(connection)
    finally:
        opened.close()


def test_a_bad_timeout_setting_stops_the_tunnel_with_the_reason(lab, monkeypatch):
    config, backend = lab
    monkeypatch.setenv(IDLE_ENV, "twenty minutes")
    with pytest.raises(LabkitError) as refused:
        tunnel("writer", config=config, backend=backend).open()
    assert IDLE_ENV in refused.value.message and "positive number of seconds" in refused.value.message
    assert refused.value.field == IDLE_ENV  # refused as a setting, before any session started
    instance = running_instance(backend, config=config)  # the worker's sandbox may hold other modules' sessions
    active = backend.client("ssm").describe_sessions(State="Active")["Sessions"]
    assert not [s for s in active if s["Target"] == instance]


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
def test_the_plugin_refuses_a_timeout_that_is_not_a_positive_number(value):
    plugin = [sys.executable, "-m", "labkit.sandbox.procs.session_plugin"]
    args = ["AWS_SSM_START_SESSION_RESPONSE", "us-east-1", "StartSession", "", "{}", "http://127.0.0.1:1"]
    ran = subprocess.run([*plugin, *args], env={**os.environ, IDLE_ENV: value}, capture_output=True, text=True)
    assert ran.returncode == 2
    assert f"{IDLE_ENV}={value!r} is not a positive number of seconds" in ran.stderr


@pytest.mark.parametrize(("value", "seconds"), [("", 1200.0), ("1", 1.0), (" 0.5 ", 0.5)])
def test_the_timeout_defaults_to_session_managers_twenty_minutes(value, seconds):
    assert plugin_settings.idle_timeout({IDLE_ENV: value} if value else {}) == seconds
