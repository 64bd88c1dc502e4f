"""Save the control plane after each mutating API call, count the calls, and wake the reconciler after each one.

Runs in the daemon, as WSGI middleware in front of moto (in the moto server's request threads). `SaveOnChange`
makes each mutating call durable before its response goes out (persist.py), or fails it whole. The count is
kept in a file (state.changes_path) so that other processes can tell cheaply whether the account changed: the
session plugin and the app hosts re-read the security rules only when it moves, and the SSM emulation keeps
its readiness verdicts while it stands.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from labkit.sandbox.daemon.persist import ControlPlaneStore
from labkit.sandbox.daemon.request import api_request
from labkit.sandbox.state import changes_path

log = logging.getLogger("labkit.sandbox.daemon.changes")

RECONCILER_AGENT = "labkit-reconciler"  # in the reconciler's User-Agent: its own calls do not wake it
READ_ACTIONS = ("Describe", "List", "Get", "Search")
SESSION_ACTIONS = ("StartSession", "ResumeSession", "TerminateSession")  # sessions change no resource


class ApiChanges:
    """A count of mutating API calls, kept in a file: a reader that saw the same count saw the same account.

    The sandbox's session plugin re-reads the security rules only when the count moves.
    """

    def __init__(self, home: Path) -> None:
        self.path = changes_path(home)
        self.count = 0
        self._lock = threading.Lock()
        self._write()

    def bump(self) -> None:
        with self._lock:
            self.count += 1
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(str(self.count))
            os.replace(tmp, self.path)
        except OSError as exc:  # a full or read-only home: readers then see "unknown" and assume a change
            log.warning("could not record the change count in %s: %s", self.path, exc)
            tmp.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)


def is_mutating(environ: dict[str, Any]) -> bool:
    """True for a call that may change the account (every POST but reads and session calls)."""
    if environ.get("REQUEST_METHOD") != "POST":
        return False
    return not api_request(environ).action.startswith(READ_ACTIONS + SESSION_ACTIONS)


class WakeOnChange:
    """WSGI middleware: after any mutating API call from outside, count it and wake the reconciler at once."""

    def __init__(self, app: Any, wake: threading.Event, changes: ApiChanges | None = None) -> None:
        self.app = app
        self.wake = wake
        self.changes = changes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        mutating = is_mutating(environ)
        result = self.app(environ, start_response)
        if mutating:
            if self.changes is not None:  # before the response goes out: the caller's next step sees the new count
                self.changes.bump()
            if RECONCILER_AGENT not in environ.get("HTTP_USER_AGENT", ""):
                self.wake.set()
        return result


def call_buffered(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app to the end and return its status, headers and body, so a middleware can act on the
    outcome (or replace the answer) before anything reaches the caller."""
    captured: dict[str, Any] = {"written": []}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.update(status=status, headers=headers)
        return captured["written"].append

    result = app(environ, capture)
    try:
        body = b"".join([*captured["written"], *result])
    finally:
        if hasattr(result, "close"):
            result.close()
    return captured["status"], captured["headers"], body


class SaveOnChange:
    """WSGI middleware: a mutating call is saved (persist.py) before its response goes out, or fails whole.

    Mutating calls take turns (a save covers exactly the calls before it). When the save fails, whatever the
    cause (ENOSPC, EACCES, or state the snapshot cannot hold), the store has put the account back as it was,
    and the caller gets AWS's `ServiceUnavailable` (HTTP 503, which SDKs retry) in its service's wire format,
    naming the cause and the fix; the daemon keeps serving.
    """

    def __init__(self, app: Any, store: ControlPlaneStore) -> None:
        self.app = app
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not is_mutating(environ):
            return self.app(environ, start_response)
        with self.store.lock:
            status, headers, body = call_buffered(self.app, environ)
            try:
                self.store.save()
            except Exception as exc:  # any failure: the call fails whole, and the daemon keeps serving
                log.error(
                    "could not save the control plane (%s: %s): %s rolled back",
                    type(exc).__name__, exc, api_request(environ).action or "call", exc_info=not isinstance(exc, OSError),
                )  # fmt: skip
                return _service_unavailable(environ, start_response, exc, self.store.path)
        start_response(status, headers)
        return [body]


def _service_unavailable(environ: dict[str, Any], start_response: Any, exc: Exception, path: Path) -> list[bytes]:
    """AWS's ServiceUnavailable in the caller's protocol (JSON, EC2 query, or the other query services)."""
    if isinstance(exc, OSError):
        message = (
            f"The sandbox could not save this change to {path} ({exc.strerror or exc}); nothing was changed. "
            f"Free some disk space or fix the permissions of {path.parent}, then retry."
        )
    else:
        message = (
            f"The sandbox could not save this change ({type(exc).__name__}: {exc}); nothing was changed. "
            f"Retry the call; if it fails again, the sandbox log ({path.parent.parent / 'sandbox.log'}) says why."
        )
    request_id = secrets.token_hex(16)
    service = api_request(environ).service
    if environ.get("HTTP_X_AMZ_TARGET") or "json" in environ.get("CONTENT_TYPE", ""):
        body = json.dumps({"__type": "ServiceUnavailable", "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "ServiceUnavailable")]
    elif service == "ec2":
        body = (
            "<Response><Errors><Error><Code>ServiceUnavailable</Code>"
            f"<Message>{_xml(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    else:
        body = (
            "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>"
            f"<Message>{_xml(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    start_response("503 Service Unavailable", [*headers, ("x-amzn-RequestId", request_id)])
    return [body]


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
