"""The tunnel guard ends the SSM session whenever its owner is gone, however the plugin ended.

A real guard process, a real owner process that started it and is then killed with SIGKILL, and a plugin that
exits the moment its owner dies (as one does when the pipe it writes to breaks). The SSM API (the aws backend,
AWS_ENDPOINT_URL) is a small HTTP server on loopback that records what it is asked: before the fix the guard saw its plugin exit first and
returned without ending the session, which then stayed open on the service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import labkit.access.tunnel.guard as guard_module

GUARD = Path(guard_module.__file__)
OWNER = """
import os, subprocess, sys, time
plugin = ["sh", "-c", f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 0.01; done"]
guard = subprocess.Popen([sys.executable, sys.argv[1], "--owner", str(os.getpid()), "--backend", "aws", "--region",
                          "us-east-1", "--session-id", "labkit-test-session", "--", *plugin])
print(guard.pid, flush=True)
time.sleep(60)
"""


def _ssm_server() -> tuple[ThreadingHTTPServer, list[tuple[str, dict]]]:
    calls: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            calls.append((self.headers.get("X-Amz-Target", ""), json.loads(body or b"{}")))
            answer = json.dumps({"SessionId": "labkit-test-session"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, calls


def test_the_session_is_ended_when_the_plugin_dies_with_its_owner():
    server, calls = _ssm_server()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        owner = subprocess.Popen(
            [sys.executable, "-c", OWNER, str(GUARD)], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "AWS_ENDPOINT_URL": endpoint},  # the AWS backend's client, on this loopback server
        )  # fmt: skip
        guard_pid = int(owner.stdout.readline())
        time.sleep(1.0)  # the guard has made its client and started the plugin
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(target.endswith("TerminateSession") for target, _ in calls):
            time.sleep(0.05)
        assert [body for target, body in calls if target.endswith("TerminateSession")] == [
            {"SessionId": "labkit-test-session"}
        ]
    finally:
        server.shutdown()
        subprocess.run(["kill", "-9", str(guard_pid)], capture_output=True, check=False)
