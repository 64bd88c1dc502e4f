"""`make hub`: JupyterHub for a class on this machine, on 127.0.0.1 unless told otherwise.

    make hub                                  # http://127.0.0.1:8000/ (loopback: this machine only)
    make hub HUB_FLAGS="--ip 0.0.0.0"         # every address of the machine (put TLS in front of it)
    .venv/bin/python -m labkit.hub.launch --ip 0.0.0.0 --port 8000 --cull-timeout 3600 --admin teacher

It needs root (each learner's server runs as the learner's own account), runs setup (Node >= 20 and the proxy,
the shared venv checked), keeps the hub's state (its database, cookie secret, the instructor's token) in a 0700
folder, writes `hub.json` there so `labkit class hub-learners` finds the running hub, and runs JupyterHub with
deploy/jupyterhub/jupyterhub_config.py in the foreground until Ctrl-C, which stops every learner's server and,
through the post-stop hook, every learner's sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError
from labkit.home import private_dir
from labkit.hub.config import HubSettings, instructor_token
from labkit.hub.setup import DEPLOY, setup

STATE_DIR = DEPLOY / "state"
CONFIG_FILE = DEPLOY / "jupyterhub_config.py"
HUB_FILE = "hub.json"


def free_port(preferred: int) -> int:
    """`preferred` when nothing listens on it on 127.0.0.1 (0: any free port)."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")  # pragma: no cover


def hub_command(settings: HubSettings, node_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The jupyterhub command line and its environment (Node first on PATH for the proxy's `#!/usr/bin/env node`)."""
    program = str(Path(sys.executable).with_name("jupyterhub"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LABKIT_"))}
    env.update(settings.to_env())
    env["PATH"] = os.pathsep.join([str(node_dir), str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    return [program, "-f", str(CONFIG_FILE)], env


def record(settings: HubSettings) -> Path:
    """hub.json in the state folder: where the running hub answers (the instructor's commands read it)."""
    path = settings.state_dir / HUB_FILE
    path.write_text(json.dumps({"public_url": settings.public_url, "api_url": settings.api_url}))
    path.chmod(0o600)
    return path


class HubClient:
    """The running hub's REST API as the instructor service (its token is in the state folder)."""

    def __init__(self, state_dir: Path = STATE_DIR) -> None:
        info = json.loads((state_dir / HUB_FILE).read_text())
        self.public_url, self.api_url = info["public_url"], info["api_url"]
        self.token = instructor_token(state_dir)

    @classmethod
    def running(cls, state_dir: Path = STATE_DIR) -> HubClient | None:
        """A client when a hub of this state folder answers, else None (the accounts are still managed)."""
        try:
            client = cls(state_dir)
            client.call("GET", "/")
        except (OSError, ValueError, KeyError):
            return None
        return client

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api_url + path, data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def add_user(self, name: str) -> None:
        try:
            self.call("POST", f"/users/{name}")
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # exists already
                raise

    def remove_user(self, name: str) -> None:
        try:
            self.call("DELETE", f"/users/{name}")  # the hub stops their server first
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.hub.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--ip", default="127.0.0.1", help="the address learners reach (default 127.0.0.1 only)")
    parser.add_argument("--port", type=int, default=8000, help="the public port (default 8000)")
    parser.add_argument("--hub-port", type=int, default=8081, help="the hub's own API port on 127.0.0.1")
    parser.add_argument("--proxy-api-port", type=int, default=8001, help="the proxy's API port on 127.0.0.1")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help="the hub's private state folder")
    parser.add_argument("--cull-timeout", type=int, default=3600, help="stop a server idle this many seconds")
    parser.add_argument("--cull-every", type=int, default=300, help="how often the culler looks, in seconds")
    parser.add_argument("--admin", action="append", default=[], help="a hub admin (an instructor's account)")
    args = parser.parse_args(argv)
    try:
        if os.geteuid() != 0:
            raise LabkitError(
                "the hub runs each learner's server as the learner's own account, which needs root",
                field="user",
                fix="run it as root: sudo make hub",
            )
        node_dir, proxy = setup()
        state = private_dir(args.state_dir.resolve())
        settings = HubSettings(
            state_dir=state, proxy_command=str(proxy), ip=args.ip, port=args.port,
            hub_port=free_port(args.hub_port), proxy_api_port=free_port(args.proxy_api_port),
            cull_timeout=args.cull_timeout, cull_every=args.cull_every, admins=args.admin,
        )  # fmt: skip
        record(settings)
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    command, env = hub_command(settings, node_dir)
    print(f"JupyterHub for the class at {settings.public_url} (learners sign in with their account; Ctrl-C stops it)")
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell's background job ignores SIGINT: the hub must not
    process = subprocess.Popen(command, env=env, cwd=state)
    # Ctrl-C reaches the hub itself (one process group) and it stops every server; SIGTERM (a service manager,
    # a test) is passed on. Either way this waits for the hub, so nothing is left behind it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signal.SIGTERM))
    return process.wait()


if __name__ == "__main__":
    sys.exit(main())
