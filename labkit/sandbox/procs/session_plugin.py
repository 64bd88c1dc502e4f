"""The sandbox's session-manager-plugin: the local end of a port-forwarding session.

It takes the same arguments as AWS's plugin (the StartSession response, region, operation, profile, the
request and the SSM endpoint), prints the same `Port N opened for sessionId ...` line, and forwards each
local connection through the instance, as the SSM agent would: to the database the endpoint map chooses,
or to a port on the instance itself (the web app the sandbox runs for it). The sandbox's network
(network.py) refuses what the current security groups, ACLs and routes block, closing the local socket, as
a timed-out remote connection looks through SSM. Like a real session it ends when idle: after
LABKIT_SSM_IDLE_TIMEOUT seconds (Session Manager's default, 20 minutes) without a new connection or a byte in
either direction, it says `Exiting session with sessionId: ID.`, ends the session and exits 0.
Its local port serves its owner's processes only (peers.py): on a shared machine another user's connection is
closed before a byte is read.

Runs as its own process, started by a tunnel (labkit.access.tunnel) in the learner's kernel or CLI where AWS's
plugin would be, one per tunnel, so it is kept small: importing it loads neither boto3 nor pandas; boto3 comes
with `main`, through the lean backend (vpc/lean.py: one session, read-only service models), and the
reachability engine (which needs no pandas) describes the rules in a background thread after the port is
announced.

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
import time
from typing import Any

from labkit.sandbox.peers import owner_only
from labkit.sandbox.procs.settings import BadSetting, idle_timeout
from labkit.sandbox.vpc.network import InstanceNetwork, Refused

RESPONSE_ENV = "AWS_SSM_START_SESSION_RESPONSE"
PLUGIN_VERSION = "1.2.707.0"  # the behaviour it stands in for: the environment-variable response, idle timeout
BUFFER = 65536


class IdleClock:
    """When the session last carried anything: a new connection or bytes either way (set without a lock:
    one float store, and a late or lost update moves the deadline by one chunk's time at most)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    def wait_idle(self, timeout: float, stop: threading.Event) -> bool:
        """Block until nothing happened for `timeout` s (True), or `stop` is set first (False)."""
        while True:
            remaining = self.last + timeout - time.monotonic()
            if remaining <= 0:
                return True
            if stop.wait(remaining):
                return False


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
        self.activity = IdleClock()
        self.stopped = threading.Event()  # the listener failed: end the process

    def serve(self) -> None:
        try:
            while True:
                client, _ = self.listener.accept()
                self.activity.touch()
                threading.Thread(target=self._handle, args=(client,), daemon=True).start()
        except OSError:  # the listener was closed (the session ended) or failed
            pass
        finally:
            self.stopped.set()

    def close(self) -> None:
        """Stop accepting: shutdown wakes the thread blocked in accept(), close releases the port."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def _handle(self, client: socket.socket) -> None:
        if not owner_only(client):  # another local user: the tunnel is its owner's only (peers.py)
            _say(f"Connection from another local user refused for session [{self.session_id}]")
            client.close()
            return
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
        threading.Thread(target=_pump, args=(upstream, client, self.activity), daemon=True).start()
        _pump(client, upstream, self.activity)

    def _connect(self) -> socket.socket:
        if not _session_active(self.backend, self.session_id):
            raise Refused(f"session {self.session_id} has been terminated")
        return self.network.connect(self.host, self.port)


def _pump(source: socket.socket, sink: socket.socket, activity: IdleClock) -> None:
    """Copy bytes one way until EOF, then pass the EOF on (half-close); every chunk keeps the session alive."""
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    source.settimeout(None)
    try:
        while True:
            count = source.recv_into(buffer)
            if not count:
                break
            activity.touch()
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


def _end_session(backend: Any, session_id: str) -> None:
    """The service's side of an idle timeout: the session is Terminated in describe_sessions, as on AWS."""
    try:
        backend.client("ssm").terminate_session(SessionId=session_id)
    except Exception:  # the sandbox may be going down; the process exits either way
        pass


def _session_active(backend: Any, session_id: str) -> bool:
    sessions = backend.client("ssm").describe_sessions(
        State="Active", Filters=[{"key": "SessionId", "value": session_id}]
    )["Sessions"]
    return bool(sessions)


def main(argv: list[str] | None = None) -> int:
    faulthandler.register(signal.SIGUSR1)
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--version"]:  # as AWS's plugin answers it (labkit checks it is newer than 1.2.497.0)
        sys.stdout.write(f"{PLUGIN_VERSION}\n")
        return 0
    if len(args) < 6 or args[2] != "StartSession":
        sys.stderr.write(
            "usage: plugin RESPONSE|AWS_SSM_START_SESSION_RESPONSE REGION StartSession PROFILE REQUEST URL\n"
        )
        return 2
    try:
        timeout = idle_timeout()
    except BadSetting as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    raw_response = os.environ.get(RESPONSE_ENV, "") if args[0] == RESPONSE_ENV else args[0]
    response, request = json.loads(raw_response), json.loads(args[4])
    region, endpoint = args[1], args[5]

    # start-up time: boto3 (about 0.1 s) loads when the plugin runs, not when `labkit.sandbox` tools import it
    from labkit.aws.backend import is_loopback_url
    from labkit.sandbox.vpc.lean import LeanBackend  # start-up time: as above (it imports boto3)

    if not is_loopback_url(endpoint):
        sys.stderr.write(f"the sandbox plugin only talks to a loopback endpoint, not {endpoint}\n")
        return 2
    backend = LeanBackend(region, endpoint=endpoint)  # per-tunnel memory: one session, read-only models
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
    opened = listener.getsockname()[1]
    _say(f"Port {opened} opened for sessionId {session_id}.")
    _say("Waiting for connections...")
    threading.Thread(target=forwarder.serve, name="accept", daemon=True).start()
    try:
        idle = forwarder.activity.wait_idle(timeout, forwarder.stopped)
    except KeyboardInterrupt:
        return 0
    forwarder.close()
    if not idle:
        sys.stderr.write(f"the listener on 127.0.0.1:{opened} failed\n")
        return 1
    _end_session(backend, session_id)
    _say(f"\nExiting session with sessionId: {session_id}.")
    return 0  # open connections end with the process, as the session's data channel closes on AWS


if __name__ == "__main__":
    sys.exit(main())
