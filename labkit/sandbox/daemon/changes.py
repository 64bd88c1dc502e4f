"""Count the control plane's mutating API calls, and wake the reconciler after each one from outside.

Runs in the daemon, as WSGI middleware in front of moto (in the moto server's request threads). The count is
kept in a file (state.changes_path) so that other processes can tell cheaply whether the account changed: the
session plugin and the app hosts re-read the security rules only when it moves, and the SSM emulation keeps
its readiness verdicts while it stands.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from labkit.sandbox.state import changes_path

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
        tmp.write_text(str(self.count))
        os.replace(tmp, self.path)


def _action(environ: dict[str, Any]) -> str:
    """The API action of a request: from X-Amz-Target (JSON protocols) or the form body (query protocol)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rpartition(".")[2]
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        return (parse_qs(body.decode(errors="replace")).get("Action") or [""])[0]
    return ""


class WakeOnChange:
    """WSGI middleware: after any mutating API call from outside, count it and wake the reconciler at once."""

    def __init__(self, app: Any, wake: threading.Event, changes: ApiChanges | None = None) -> None:
        self.app = app
        self.wake = wake
        self.changes = changes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        is_post = environ.get("REQUEST_METHOD") == "POST"
        action = _action(environ) if is_post else ""
        result = self.app(environ, start_response)
        if is_post and not action.startswith(READ_ACTIONS + SESSION_ACTIONS):
            if self.changes is not None:  # before the response goes out: the caller's next step sees the new count
                self.changes.bump()
            if RECONCILER_AGENT not in environ.get("HTTP_USER_AGENT", ""):
                self.wake.set()
        return result
