"""Run a session plugin and end it, and its session, when the process that opened the tunnel goes away.

A notebook kernel that is killed (restart, crash, `kill -9`) runs no cleanup code. This guard is the
plugin's parent: it watches the tunnel owner's pid, and when that process is gone it terminates the SSM
session and the plugin, so neither a process nor a session outlives the kernel. It is run by file path,
not as part of the labkit package.

Ending the session must not wait for anything once the owner is gone: on a busy machine importing boto3 and
labkit and making a client takes seconds, longer than a session may stay open after its owner died. So the
guard makes its SSM client first and only then starts the plugin: by the time the plugin says its port is
open (what the owner waits for), ending the session is one request.

    python guard.py --owner PID --backend sandbox|aws --region R --session-id ID [--endpoint-url U] -- PLUGIN...
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.25


def _owner_gone(owner: int) -> bool:
    if os.getppid() != owner:  # reparented: the owner exited
        return True
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


class SessionEnder:
    """The SSM client that ends the session, made while the owner lives (see the module doc)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.session_id = args.session_id
        self._client: Any = None
        self._error: Exception | None = None
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the guard runs as a script
        try:
            from labkit.aws.backend import get_backend  # the guard's only import of labkit (and boto3)

            backend = get_backend(args.backend, args.region)
            if args.endpoint_url:  # the endpoint the tunnel was opened against (a sandbox's)
                backend = type(backend)(args.region, endpoint=args.endpoint_url)
            self._client = backend.client("ssm")
        except Exception as exc:  # reported if the session has to be ended; the tunnel itself still works
            self._error = exc

    def end(self) -> None:
        """Best effort: end the session on the service (a leaked session stays open until its idle timeout)."""
        try:
            if self._client is None:
                raise self._error or RuntimeError("no SSM client")
            self._client.terminate_session(SessionId=self.session_id)
        except Exception as exc:
            try:  # the owner that read our stderr may be gone with it
                sys.stderr.write(f"guard: could not terminate session {self.session_id}: {exc}\n")
            except OSError:
                pass


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(3)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: list[str] | None = None) -> int:
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # run by path: do not let this folder's modules shadow top-level names
    parser = argparse.ArgumentParser(prog="labkit-tunnel-guard")
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--session-id", required=True)
    parser.add_argument("--endpoint-url", default="")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.append(True))
    ender = SessionEnder(args)
    if stopping:  # the tunnel was closed while the client was made: it ends the session itself
        return 0
    if _owner_gone(args.owner):
        ender.end()
        return 0
    child = subprocess.Popen(command)
    while True:
        try:
            code = child.wait(POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        else:
            if _owner_gone(args.owner):  # the plugin ended with its owner (its output pipe broke): nobody else will
                ender.end()
            return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N, as the owner reads it
        if stopping:
            if _owner_gone(args.owner):  # a signal that came with the owner's death, not from its close()
                ender.end()
            _stop(child)
            return 0
        if _owner_gone(args.owner):
            ender.end()
            _stop(child)
            return 0


if __name__ == "__main__":
    sys.exit(main())
