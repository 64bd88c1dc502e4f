"""Session Manager for the sandbox: the SSM calls moto lacks, answered from the control plane's own state.

Runs in the daemon, as WSGI middleware in front of moto, in the moto server's request threads.
StartSession, TerminateSession, DescribeSessions and DescribeInstanceInformation, in AWS's JSON wire format,
so the tunnel code makes exactly the calls it makes on AWS. An instance is Online when the readiness
diagnosis passes (running, instance profile, role with the SSM policy, outbound https), as the real agent
registers only then. The diagnosis reads moto's backends in this process (inprocess.py), never this server's
own HTTP API. The data channel is `labkit.sandbox.procs.session_plugin`, the stand-in session-manager-plugin.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit.sandbox.daemon.inprocess import InProcessBackend
from labkit.sandbox.daemon.request import api_request

SUPPORTED_DOCUMENTS = ("AWS-StartPortForwardingSessionToRemoteHost", "AWS-StartPortForwardingSession")
HANDLED = ("StartSession", "TerminateSession", "ResumeSession", "DescribeSessions", "DescribeInstanceInformation")


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Session:
    session_id: str
    target: str
    document: str
    parameters: dict[str, list[str]]
    region: str
    reason: str = ""
    started: float = field(default_factory=time.time)
    ended: float | None = None

    @property
    def status(self) -> str:
        return "Terminated" if self.ended else "Connected"

    def to_api(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "SessionId": self.session_id, "Target": self.target, "Status": self.status, "StartDate": self.started,
            "DocumentName": self.document, "Owner": "arn:aws:iam::123456789012:user/labkit", "Reason": self.reason,
        }  # fmt: skip
        if self.ended:
            item["EndDate"] = self.ended
        return item


class SessionManager:
    """WSGI middleware: answers the SSM session calls, passes everything else to moto."""

    def __init__(self, app: Any, changes: Any = None) -> None:
        self.app = app
        self.changes = changes  # the daemon's ApiChanges: while its count stands, readiness stands too
        self._readiness: dict[tuple[str, int, str], bool] = {}
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._backends: dict[str, InProcessBackend] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, _, action = target.partition(".")
        if service != "AmazonSSM" or action not in HANDLED:
            return self.app(environ, start_response)
        request = api_request(environ)
        region = request.region_of("ssm", "us-east-1")
        try:
            body = request.json()
            result = getattr(self, "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", action).lower())(region, body)
            status, payload = "200 OK", result
        except ApiError as exc:
            status, payload = f"{exc.status} Error", {"__type": exc.code, "message": exc.message}
        data = json.dumps(payload, default=str).encode()
        start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
        return [data]

    # ----- the calls -----
    def _start_session(self, region: str, body: dict[str, Any]) -> dict[str, Any]:
        target = _required(body, "Target")
        document = body.get("DocumentName") or "SSM-SessionManagerRunShell"
        if document not in SUPPORTED_DOCUMENTS:
            raise ApiError(
                "InvalidDocument", f"the sandbox supports only port forwarding: {', '.join(SUPPORTED_DOCUMENTS)}"
            )
        parameters = body.get("Parameters") or {}
        if "portNumber" not in parameters:
            raise ApiError("InvalidParameters", "portNumber is required for port forwarding")
        if target not in self._online(region, [target]):
            raise ApiError("TargetNotConnected", f"{target} is not connected.")
        session = Session(
            f"labkit-{secrets.token_hex(9)[:17]}", target, document, parameters, region, body.get("Reason", "")
        )
        with self._lock:
            self.sessions[session.session_id] = session
        stream = f"wss://ssmmessages.{region}.amazonaws.com/v1/data-channel/{session.session_id}?role=publish_subscribe"
        return {"SessionId": session.session_id, "TokenValue": secrets.token_urlsafe(24), "StreamUrl": stream}

    def _resume_session(self, region: str, body: dict[str, Any]) -> dict[str, Any]:
        session = self._session(_required(body, "SessionId"))
        if session.ended:
            raise ApiError("DoesNotExistException", f"session {session.session_id} has ended")
        return {"SessionId": session.session_id, "TokenValue": secrets.token_urlsafe(24), "StreamUrl": ""}

    def _terminate_session(self, region: str, body: dict[str, Any]) -> dict[str, Any]:
        session_id = _required(body, "SessionId")
        with self._lock:
            session = self.sessions.get(session_id)
            if session is not None and session.ended is None:
                session.ended = time.time()
        return {"SessionId": session_id}  # AWS answers the same for an unknown or ended session

    def _describe_sessions(self, region: str, body: dict[str, Any]) -> dict[str, Any]:
        state = _required(body, "State")
        if state not in ("Active", "History"):
            raise ApiError("ValidationException", "State must be Active or History")
        filters = {f["key"]: f["value"] for f in body.get("Filters") or []}
        with self._lock:
            sessions = [s for s in self.sessions.values() if s.region == region]
        chosen = [
            s.to_api()
            for s in sessions
            if (s.ended is None) == (state == "Active")
            and filters.get("SessionId", s.session_id) == s.session_id
            and filters.get("Target", s.target) == s.target
        ]
        return {"Sessions": chosen}

    def _describe_instance_information(self, region: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted: list[str] = []
        for item in body.get("Filters") or []:
            if item.get("Key") in ("InstanceIds", "instanceIds"):
                wanted += item.get("Values", [])
        for item in body.get("InstanceInformationFilterList") or []:
            if item.get("key") == "InstanceIds":
                wanted += item.get("valueSet", [])
        online = self._online(region, wanted or None)
        now = time.time()
        items = [
            {
                "InstanceId": instance_id,
                "PingStatus": "Online",
                "LastPingDateTime": now,
                "AgentVersion": "3.3.0.0",
                "IsLatestVersion": True,
                "PlatformType": "Linux",
                "PlatformName": "Amazon Linux",
                "ResourceType": "EC2Instance",
                "IPAddress": address,
            }
            for instance_id, address in sorted(online.items())
        ]
        return {"InstanceInformationList": items}

    # ----- helpers -----
    def _session(self, session_id: str) -> Session:
        with self._lock:
            session = self.sessions.get(session_id)
        if session is None:
            raise ApiError("DoesNotExistException", f"session {session_id} does not exist")
        return session

    def _online(self, region: str, instance_ids: Iterable[str] | None) -> dict[str, str]:
        """Instance id -> private address, for the instances whose agent would be registered and Online."""
        with self._lock:
            backend = self._backends.setdefault(region, InProcessBackend(region))
        ec2 = backend.client("ec2")
        params: dict[str, Any] = {"Filters": [{"Name": "instance-state-name", "Values": ["running"]}]}
        if instance_ids is not None:
            ids = [i for i in instance_ids if i.startswith("i-")]
            if not ids:
                return {}
            params["Filters"].append({"Name": "instance-id", "Values": ids})
        reservations = ec2.describe_instances(**params)["Reservations"]
        online = {}
        for instance in (i for r in reservations for i in r["Instances"]):
            if self._ready(backend, instance["InstanceId"]):
                online[instance["InstanceId"]] = instance.get("PrivateIpAddress", "")
        return online

    def _ready(self, backend: InProcessBackend, instance_id: str) -> bool:
        # start-up time: labkit.access loads pandas (about 0.7 s); the daemon reports ready before the first call
        from labkit.access.tunnel.readiness import diagnose

        count = self.changes.count if self.changes is not None else -1
        key = (backend.region, count, instance_id)
        if count < 0 or key not in self._readiness:
            self._readiness = {k: v for k, v in self._readiness.items() if k[1] == count}
            self._readiness[key] = diagnose(backend, instance_id).ready
        return self._readiness[key]


def _required(body: dict[str, Any], key: str) -> Any:
    if not body.get(key):
        raise ApiError("ValidationException", f"{key} is required")
    return body[key]
