"""The sandbox's session-manager-plugin: the local end of a port-forwarding session.

It takes the same arguments as AWS's plugin (the StartSession response, region, operation, profile, the
request and the SSM endpoint), prints the same `Port N opened for sessionId ...` line, and forwards each
local connection through the instance, as the SSM agent would: to the database the endpoint map chooses,
or to a port on the instance itself (the web app the sandbox runs for it). The sandbox's network
(network.py) refuses what the current security groups, ACLs and routes block, closing the local socket, as
a timed-out remote connection looks through SSM.

Runs as its own process, started by a tunnel (labkit.access.tunnel) in the learner's kernel or CLI where AWS's
plugin would be. It starts light: importing it loads neither boto3 nor pandas; boto3 comes with `main`, and
the reachability engine (pandas) in a background thread after the port is announced.

    python -m labkit.sandbox.procs.session_plugin AWS_SSM_START_SESSION_RESPONSE us-east-1 StartSession "" REQUEST URL
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import socket
import sys
import threading
from typing import Any

from labkit.sandbox.vpc.network import InstanceNetwork, Refused

RESPONSE_ENV = "AWS_SSM_START_SESSION_RESPONSE"
BUFFER = 65536


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Forwarder:
    """Accept local connections and forward each one through the 'instance' to the remote endpoint."""

    def __init__(
        self, backend: Any, session_id: str, target: str, host: str, port: int, listener: socket.socket
    ) -> None:
        self.backend = backend
        self.session_id = session_id
        self.target = target
        self.host = host
        self.port = port
        self.listener = listener
        self.network = InstanceNetwork(backend, target)

    def serve(self) -> None:
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        _say(f"Connection accepted for session [{self.session_id}]")
        try:
            upstream = self._connect()
        except Exception as exc:  # refuse, never leave the client waiting on an open socket
            reason = str(exc) if isinstance(exc, Refused) else f"the sandbox could not forward it: {exc}"
            _say(f"Connection to {self.host}:{self.port} refused: {' '.join(reason.split())}")
            client.close()
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)

    def _connect(self) -> socket.socket:
        if not _session_active(self.backend, self.session_id):
            raise Refused(f"session {self.session_id} has been terminated")
        return self.network.connect(self.host, self.port)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes one way until EOF, then pass the EOF on (half-close)."""
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    source.settimeout(None)
    try:
        while True:
            count = source.recv_into(buffer)
            if not count:
                break
            sink.sendall(view[:count])
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _warm_up(forwarder: Forwarder) -> None:
    """Describe the rules once while the learner's client is still starting (errors wait for a connection)."""
    try:
        forwarder.network.rules.engine()
    except Exception:
        pass


def _session_active(backend: Any, session_id: str) -> bool:
    sessions = backend.client("ssm").describe_sessions(
        State="Active", Filters=[{"key": "SessionId", "value": session_id}]
    )["Sessions"]
    return bool(sessions)


def main(argv: list[str] | None = None) -> int:
    faulthandler.register(signal.SIGUSR1)
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 6 or args[2] != "StartSession":
        sys.stderr.write(
            "usage: plugin RESPONSE|AWS_SSM_START_SESSION_RESPONSE REGION StartSession PROFILE REQUEST URL\n"
        )
        return 2
    raw_response = os.environ.get(RESPONSE_ENV, "") if args[0] == RESPONSE_ENV else args[0]
    response, request = json.loads(raw_response), json.loads(args[4])
    region, endpoint = args[1], args[5]

    # start-up time: boto3 (about 0.1 s) loads when the plugin runs, not when `labkit.sandbox` tools import it
    from labkit.aws.backend import is_loopback_url
    from labkit.sandbox.backend import SandboxBackend  # start-up time: as above (it imports boto3)

    if not is_loopback_url(endpoint):
        sys.stderr.write(f"the sandbox plugin only talks to a loopback endpoint, not {endpoint}\n")
        return 2
    backend = SandboxBackend(region, endpoint=endpoint)
    session_id = response["SessionId"]
    parameters = request.get("Parameters", {})
    host = (parameters.get("host") or ["localhost"])[0]
    port = int(parameters["portNumber"][0])
    local_port = int((parameters.get("localPortNumber") or ["0"])[0])
    if not _session_active(backend, session_id):
        sys.stderr.write(f"session {session_id} is not active\n")
        return 1
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", local_port))
    except OSError as exc:
        sys.stderr.write(f"cannot listen on 127.0.0.1:{local_port}: {exc.strerror}\n")
        return 1
    listener.listen(128)
    forwarder = Forwarder(backend, session_id, request["Target"], host, port, listener)
    threading.Thread(target=_warm_up, args=(forwarder,), daemon=True).start()
    _say(f"\nStarting session with SessionId: {session_id}")
    _say(f"Port {listener.getsockname()[1]} opened for sessionId {session_id}.")
    _say("Waiting for connections...")
    try:
        forwarder.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
