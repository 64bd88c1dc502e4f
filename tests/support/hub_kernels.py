"""Drive a running JupyterHub from a test: its REST API as a service, a learner's kernel over its websocket.

What a learner's browser does, without a browser: the hub starts the learner's server (POST
/hub/api/users/NAME/server), a token of the learner's opens a kernel on it (POST /user/NAME/api/kernels), and
code runs there through the kernel's channels websocket, as the learner's own system account.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import websocket


class HubApi:
    """The hub's REST API with a service token."""

    def __init__(self, public_url: str, token: str) -> None:
        self.public_url = public_url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None, token: str | None = None, timeout: float = 120) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.public_url}{path}", data=data, method=method,
            headers={"Authorization": f"token {token or self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def wait_ready(self, name: str, timeout: float = 180) -> float:
        """Block until the learner's server is ready; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            server = (self.call("GET", f"/hub/api/users/{name}").get("servers") or {}).get("")
            if server and server.get("ready"):
                return time.monotonic() - started
            time.sleep(0.2)
        raise TimeoutError(f"{name}'s server not ready after {timeout:.0f} s")

    def wait_stopped(self, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.call("GET", f"/hub/api/users/{name}").get("servers"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{name}'s server still there after {timeout:.0f} s")

    def user_token(self, name: str) -> str:
        return str(
            self.call("POST", f"/hub/api/users/{name}/tokens", {"note": "hub test", "expires_in": 3600})["token"]
        )


@dataclass
class CellResult:
    source: str
    outputs: list[str] = field(default_factory=list)
    error: str | None = None


class LearnerKernel:
    """A kernel on a learner's server, and code run in it."""

    def __init__(self, api: HubApi, name: str, token: str) -> None:
        self.api, self.name, self.token = api, name, token
        self.kernel_id = api.call("POST", f"/user/{name}/api/kernels", {"name": "python3"}, token=token)["id"]
        url = api.public_url.replace("http://", "ws://") + f"/user/{name}/api/kernels/{self.kernel_id}/channels"
        self.socket = websocket.create_connection(url, header=[f"Authorization: token {token}"], timeout=600)

    def run(self, code: str, timeout: float = 600) -> CellResult:
        """Execute `code`; its text outputs, and the error (name: value) if it raised."""
        msg_id = uuid.uuid4().hex
        self.socket.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name, "session": msg_id,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))  # fmt: skip
        result = CellResult(code)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                result.outputs.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                result.outputs.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                result.error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return result
        raise TimeoutError(f"{self.name}: no answer within {timeout:.0f} s to {code[:80]!r}")

    def value(self, expression: str) -> Any:
        """A JSON value computed in the kernel (printed as JSON, read back)."""
        result = self.run(f"import json as _json\nprint(_json.dumps({expression}))")
        if result.error:
            raise AssertionError(f"{self.name}: {expression}: {result.error}")
        return json.loads("".join(result.outputs).strip().splitlines()[-1])

    def json(self, code: str) -> Any:
        """Run `code`, whose last printed line is JSON, and read that line back."""
        result = self.run(code)
        if result.error:
            raise AssertionError(f"{self.name}: {result.error}\n{code}")
        return json.loads("".join(result.outputs).strip().splitlines()[-1])

    def run_notebook(self, path: Path) -> list[CellResult]:
        """Every code cell of a (solved) notebook in order, as nbval runs it: cells tagged to skip are skipped, a
        cell tagged `raises-exception` must raise, any other must not."""
        results = []
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            tags = set(cell.get("metadata", {}).get("tags", []))
            if cell.cell_type != "code" or tags & {"skip-execution", "nbval-skip"}:
                continue
            result = self.run(cell.source)
            expected = "raises-exception" in tags
            if bool(result.error) != expected:
                raise AssertionError(
                    f"{self.name}: {path.name} cell {index} "
                    + (f"raised {result.error}" if result.error else "should have raised")
                    + f"\n{cell.source}\n{''.join(result.outputs)[-2000:]}"
                )
            results.append(result)
        return results

    def close(self) -> None:
        try:
            self.socket.close()
            self.api.call("DELETE", f"/user/{self.name}/api/kernels/{self.kernel_id}", token=self.token)
        except (OSError, urllib.error.HTTPError, websocket.WebSocketException):
            pass
