"""Run a session plugin and end it, and its session, when the process that opened the tunnel goes away.

A notebook kernel that is killed (restart, crash, `kill -9`) runs no cleanup code. This guard is the
plugin's parent: it watches the tunnel owner's pid, and when that process is gone it terminates the SSM
session and the plugin, so neither a process nor a session outlives the kernel. It is run by file path,
not as part of the labkit package, so the plugin starts at once.

Ending the session must not wait for anything once the owner is gone: on a busy machine importing boto3 and
labkit and building a client takes seconds. So the guard makes its SSM client while the plugin starts, and
holds back the plugin's output (its `Port N opened` line is what the owner waits for) until the client is
ready: by the time a tunnel is open, ending its session is one request.

    python guard.py --owner PID --backend sandbox|aws --region R --session-id ID [--endpoint-url U] -- PLUGIN...
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

POLL_SECONDS = 0.25
PREPARE_SECONDS = 120.0  # the client is made well within this even on a saturated machine; past it, go on without


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
    """The SSM client that ends the session, made in the background from the guard's first moment."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.session_id = args.session_id
        self.ready = threading.Event()
        self._client: Any = None
        self._error: Exception | None = None
        threading.Thread(target=self._prepare, args=(args,), name="prepare", daemon=True).start()

    def _prepare(self, args: argparse.Namespace) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the guard runs as a script
        try:
            from labkit.aws.backend import get_backend  # here, not at the top: the plugin starts first

            backend = get_backend(args.backend, args.region)
            if args.endpoint_url:  # the endpoint the tunnel was opened against (a sandbox's)
                backend = type(backend)(args.region, endpoint=args.endpoint_url)
            self._client = backend.client("ssm")
        except Exception as exc:  # reported if the session has to be ended; the guard still stops the plugin
            self._error = exc
        finally:
            self.ready.set()

    def end(self) -> None:
        """Best effort: end the session on the service (a leaked session stays open until its idle timeout)."""
        self.ready.wait(PREPARE_SECONDS)
        try:
            if self._client is None:
                raise self._error or TimeoutError(f"no SSM client after {PREPARE_SECONDS:.0f} s")
            self._client.terminate_session(SessionId=self.session_id)
        except Exception as exc:
            try:  # the owner that read our stderr may be gone with it
                sys.stderr.write(f"guard: could not terminate session {self.session_id}: {exc}\n")
            except OSError:
                pass


def _relay(child: subprocess.Popen[bytes], ready: threading.Event) -> None:
    """Pass the plugin's output on, line by line, once the guard is ready (or the plugin has exited: then its last
    words, such as why it could not start, go out at once); keep draining it if nobody reads."""
    while not ready.wait(POLL_SECONDS) and child.poll() is None:
        pass
    assert child.stdout is not None
    out: IO[bytes] | None = sys.stdout.buffer
    for line in iter(child.stdout.readline, b""):
        if out is None:
            continue
        try:
            out.write(line)
            out.flush()
        except OSError:  # the owner is gone: the plugin must never block on a full pipe
            out = None


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
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    ender = SessionEnder(args)
    relay = threading.Thread(target=_relay, args=(child, ender.ready), name="relay", daemon=True)
    relay.start()
    while True:
        try:
            code = child.wait(POLL_SECONDS)
            relay.join(5)  # the plugin's last words (e.g. why its session ended) reach the owner
            return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N, as the owner reads it
        except subprocess.TimeoutExpired:
            pass
        if stopping:
            _stop(child)
            return 0
        if _owner_gone(args.owner):
            ender.end()
            _stop(child)
            return 0


if __name__ == "__main__":
    sys.exit(main())
