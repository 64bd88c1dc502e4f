"""The sandbox's VPC as seen from a lab instance: where a TCP connection it opens lands, and whether it may.

A connection from an instance to a database endpoint is resolved with the endpoint map (the sandbox's DNS)
and checked with the reachability engine against the security groups, ACLs and routes as they are now;
one the rules block is refused with the rule that decides. A connection to the instance's own port reaches
the process the sandbox runs for it there (the web app). Both the session plugin (traffic arriving through
Session Manager) and the web app (its database connections) go through here.

Runs in the session plugin and in the app hosts: never in the daemon, whose API it calls to describe the rules.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from labkit.errors import LabkitError
from labkit.sandbox.state import read_changes, require_running
from labkit.sandbox.vpc.dns import pick

LOCAL_HOSTS = ("localhost", "127.0.0.1")


class Refused(Exception):
    """The connection would fail on AWS (blocked, nothing listening, unknown host); the message says why."""


class RulesView:
    """The reachability engine over the account as it is now. It is described again only when the sandbox's
    count of mutating API calls has moved (or the set of databases has), so checking a connection costs a
    file read, and a rule revoked a moment ago still refuses the next connection."""

    def __init__(self, backend: Any, instance_id: str) -> None:
        self.backend = backend
        self.instance_id = instance_id
        self._lock = threading.Lock()
        self._key: tuple[int, tuple[str, ...]] | None = None
        self._engine: Any = None

    def engine(self) -> Any:
        # start-up time: the reachability engine loads boto3 (about 0.15 s); the session plugin announces its port first
        from labkit.security.reach import Reachability

        databases = tuple(sorted(require_running().instances))
        with self._lock:
            key = (read_changes(), databases)
            if key != self._key or key[0] < 0:
                self._engine = Reachability.snapshot(
                    self.backend, instance_ids=(self.instance_id,), db_identifiers=databases, lab=False
                )
                self._key = key
            return self._engine


class InstanceNetwork:
    """Open TCP connections as the EC2 instance `instance_id` would, under the sandbox's rules."""

    def __init__(self, backend: Any, instance_id: str) -> None:
        self.instance_id = instance_id
        self.rules = RulesView(backend, instance_id)

    def connect(self, host: str, port: int, timeout: float = 5.0) -> socket.socket:
        """A connected socket to what `host:port` is from the instance, or Refused."""
        return socket.create_connection(("127.0.0.1", self.local_port(host, port)), timeout=timeout)

    def local_port(self, host: str, port: int) -> int:
        """The 127.0.0.1 port a connection from the instance to `host:port` reaches, or Refused with the reason."""
        if host in LOCAL_HOSTS:
            app = require_running().apps.get(self.instance_id) or {}
            if app.get("status") != "running" or int(app.get("instance_port", 0)) != port:
                raise Refused(f"nothing listens on port {port} of {self.instance_id} in the sandbox")
            return int(app["port"])
        try:
            db_identifier, local_port, db_port = pick(host)
        except LabkitError as exc:
            raise Refused(exc.message) from None
        if port != db_port:
            raise Refused(f"{host} listens on {db_port}, not {port} (the connection would time out)")
        verdict = self.rules.engine().check(self.instance_id, db_identifier, port)
        if not verdict.reachable:
            blocked = verdict.blocked_by
            raise Refused(f"{verdict.headline}: {blocked.rule if blocked else ''}")
        return local_port

    def dial(self, host: str, port: int, timeout: float) -> socket.socket:
        """`connect` with a refusal raised as the OSError a blocked connection gives (the app's `dial`)."""
        try:
            return self.connect(host, port, timeout)
        except Refused as exc:
            raise ConnectionRefusedError(f"{exc} (connecting to {host}:{port}, refused in the sandbox)") from None
