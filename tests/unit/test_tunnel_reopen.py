"""A tunnel whose session ended is never reused: it is reopened once, saying why (issue 15, item 4).

Session Manager ends an idle port forward after 20 minutes by default: the plugin prints "Exiting session with
sessionId ..." and exits. Here a plugin wrapping the suite's stand-in (tests/support/fakes) does the same on
SIGUSR1, a real process exit, and the AWS backend's SSM calls go to botocore's Stubber (see test_tunnel_aws).
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path

import pytest
from test_tunnel_aws import PLUGIN, SESSION_ID, aws, echo_server, lab, roundtrip  # noqa: F401 (fixtures)

from labkit.access.tunnel import find_open
from labkit.access.webapp import WebApp
from labkit.errors import LabkitError

# The stand-in plugin, plus what the real one does when the service ends the session: a line, then exit 0.
ENDING_PLUGIN = f"""#!{sys.executable}
import importlib.machinery, os, signal, sys
fake = importlib.machinery.SourceFileLoader("fake_plugin", {str(PLUGIN)!r}).load_module()
with open(os.environ["ENDING_PLUGIN_PIDS"], "a") as out:
    out.write(f"{{os.getpid()}}\\n")

def session_ended(*_):
    print("\\n\\nExiting session with sessionId: {SESSION_ID}.\\n", flush=True)
    os._exit(0)

signal.signal(signal.SIGUSR1, session_ended)
sys.exit(fake.main(sys.argv[1:]))
"""


@pytest.fixture
def ending(aws, tmp_path, monkeypatch):  # noqa: F811
    """The `aws` fixture with a plugin that ends its session on SIGUSR1; yields the file of plugin pids."""
    folder = tmp_path / "ending-bin"
    folder.mkdir()
    plugin = folder / "session-manager-plugin"
    plugin.write_text(ENDING_PLUGIN)
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    pids = tmp_path / "plugin-pids"
    monkeypatch.setenv("ENDING_PLUGIN_PIDS", str(pids))
    monkeypatch.setenv("PATH", os.pathsep.join([str(folder), os.environ["PATH"]]))
    assert aws.backend.session_plugin() == [str(plugin)]
    return pids


def plugin_pids(pids: Path) -> list[int]:
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


def end_session(tunnel, pid: int, signum: int = signal.SIGUSR1) -> None:
    """Make the plugin exit (a real exit), and wait until the tunnel's guard has exited with it."""
    os.kill(pid, signum)
    tunnel._process.wait(10)  # the guard returns as soon as its plugin does
    assert tunnel.ended and not tunnel.is_open


def open_writer(aws):  # noqa: F811
    aws.ssm.online()
    aws.ssm.start()
    return aws.tunnel().open()


def test_find_open_reopens_an_ended_tunnel_on_the_same_port_and_says_why(aws, ending, capsys):  # noqa: F811
    tunnel = open_writer(aws)
    port = tunnel.port
    [first] = plugin_pids(ending)
    end_session(tunnel, first)

    aws.ssm.terminate()  # the dead session is ended on the service too (best effort)
    aws.ssm.online()
    aws.ssm.start()
    aws.ssm.terminate()  # for the close at the end
    try:
        found = find_open("writer", aws.lab.config, aws.backend)
        assert found is tunnel and found.is_open and not found.ended
        assert found.port == port, "the learner's address (and any engine URL) stays the same"
        assert roundtrip(port, b"after the idle timeout") == b"after the idle timeout"
        said = capsys.readouterr().out.strip().splitlines()
        assert said == [
            f"tunnel to writer: the Session Manager session ended (Session Manager ends a port forward after "
            f"20 idle minutes by default); reopened at 127.0.0.1:{port}"
        ]
        assert len(plugin_pids(ending)) == 2
    finally:
        tunnel.close()
    aws.ssm.stubber.assert_no_pending_responses()
    assert aws.ssm.operations.count("start_session") == 2


def test_a_reopen_that_fails_says_why_the_tunnel_ended_and_why_it_cannot_reopen(aws, ending):  # noqa: F811
    tunnel = open_writer(aws)
    end_session(tunnel, plugin_pids(ending)[0])
    aws.ssm.terminate()
    aws.ssm.online()
    aws.ssm.stubber.add_client_error(
        "start_session", service_error_code="AccessDeniedException", service_message="not allowed"
    )
    with pytest.raises(LabkitError) as caught:
        find_open("writer", aws.lab.config, aws.backend)
    message = caught.value.message
    assert "the Session Manager session ended" in message and "reopening it failed" in message
    assert "AccessDeniedException" in message and "ssm:StartSession" in caught.value.fix
    assert not tunnel.is_open and not tunnel.ended, "tried once, then left closed: never handed out dead"
    assert find_open("writer", aws.lab.config, aws.backend) is None
    aws.ssm.stubber.assert_no_pending_responses()


def test_a_crashed_plugin_is_reported_as_such(aws, ending, capsys):  # noqa: F811
    tunnel = open_writer(aws)
    end_session(tunnel, plugin_pids(ending)[0], signal.SIGKILL)
    assert tunnel.end_reason() == "the session plugin was killed by signal 9"
    aws.ssm.terminate()
    aws.ssm.online()
    aws.ssm.start()
    aws.ssm.terminate()
    try:
        assert find_open("writer", aws.lab.config, aws.backend) is tunnel and tunnel.is_open
        assert "the session plugin was killed by signal 9; reopened at" in capsys.readouterr().out
    finally:
        tunnel.close()


def test_an_open_tunnel_is_reused_without_reopening(aws, ending, capsys):  # noqa: F811
    tunnel = open_writer(aws)
    aws.ssm.terminate()
    try:
        assert find_open("writer", aws.lab.config, aws.backend) is tunnel
        assert tunnel.revive() is False and capsys.readouterr().out == ""
    finally:
        tunnel.close()
    assert tunnel.revive() is False, "a tunnel closed on purpose stays closed"
    assert len(plugin_pids(ending)) == 1


def test_the_web_app_client_reopens_its_ended_tunnel(aws, ending, capsys, monkeypatch):  # noqa: F811
    """The web app's tunnel used to stay dead: every request failed until the kernel restarted."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"writer": {"ok": true}, "reader": {"ok": true}}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("FAKE_PLUGIN_FORWARD_TO", f"127.0.0.1:{server.server_address[1]}")
    try:
        tunnel = open_writer(aws)
        app = WebApp(tunnel)
        assert app.request("GET", "/health")[0] == 200
        end_session(tunnel, plugin_pids(ending)[0])
        aws.ssm.terminate()
        aws.ssm.online()
        aws.ssm.start()
        aws.ssm.terminate()
        status, _, text = app.request("GET", "/health")
        assert status == 200 and '"writer"' in text
        assert "the Session Manager session ended" in capsys.readouterr().out
        app.close()
    finally:
        server.shutdown()
        server.server_close()
    aws.ssm.stubber.assert_no_pending_responses()


def test_a_backend_that_moved_closes_the_old_tunnel_instead_of_reusing_it(aws, ending, capsys, monkeypatch):  # noqa: F811
    """A restarted sandbox answers at a new address: the old tunnel's session belongs to the old one."""
    tunnel = open_writer(aws)
    aws.ssm.terminate()  # the old session is ended as its tunnel closes
    restarted = type(aws.backend)(aws.backend.session(), aws.ssm.client)
    monkeypatch.setattr(restarted, "endpoint_url", lambda: "http://127.0.0.1:4999")
    assert find_open("writer", aws.lab.config, restarted) is None
    assert not tunnel.is_open and not tunnel.ended
    said = capsys.readouterr().out
    assert "now answers at http://127.0.0.1:4999, not None (it was restarted); reopening" in said
    aws.ssm.stubber.assert_no_pending_responses()


def test_a_backend_whose_service_stopped_says_so_before_reusing_a_tunnel(aws, ending, monkeypatch):  # noqa: F811
    from labkit.errors import SandboxError

    tunnel = open_writer(aws)
    aws.ssm.terminate()
    stopped = type(aws.backend)(aws.backend.session(), aws.ssm.client)

    def not_running():
        raise SandboxError("the sandbox is not running", field="sandbox", fix="start it with `labkit sandbox up`")

    monkeypatch.setattr(stopped, "endpoint_url", not_running)
    try:
        with pytest.raises(SandboxError) as caught:
            find_open("writer", aws.lab.config, stopped)
        assert caught.value.fix == "start it with `labkit sandbox up`"
    finally:
        tunnel.close()
