"""`make lab`: start the sandbox, then JupyterLab on loopback, for root too, and print the link with its token.

JupyterLab opens the learner's copies of the notebooks (labkit.workbook.release: each exercise's solution replaced
by a "your turn" placeholder), made in the labkit home where missing and never overwritten, so the learner's work
survives the next `make lab`; `--notebook-dir` opens another folder as it is (the solved notebooks, for authors).

JupyterLab refuses to start as root without `--allow-root`, and containers, cloud VMs and CI machines run as
root; the server listens on 127.0.0.1 only (its token is the only lock, so no other machine may knock). The
token is generated here and handed over in the environment (JUPYTER_TOKEN), never on the command line, where
`ps` would show it. The venv's `bin` goes first on PATH, so a hint that says `labkit ...` works in a notebook's
`!` cell and in a JupyterLab terminal. When JupyterLab fails to start, a sandbox this launcher started is stopped
again, so a failed `make lab` leaves nothing running.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
PREFERRED_PORT = 8888  # JupyterLab's usual port, when it is free


def free_port(preferred: int = PREFERRED_PORT) -> int:
    """`preferred` when nothing listens on it on loopback, else a free port the kernel picks."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")  # pragma: no cover - port 0 always binds


def lab_command(
    notebook_dir: str | Path, port: int, *, euid: int | None = None, open_browser: bool = True
) -> list[str]:
    """The `jupyter lab` command line: loopback only, a fixed port, `--allow-root` when run as root."""
    euid = os.geteuid() if euid is None else euid
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        f"--notebook-dir={notebook_dir}",
        f"--ServerApp.ip={LOOPBACK}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the printed link must be the port it listens on
    ]
    if euid == 0:
        command.append("--allow-root")
    if not open_browser:
        command.append("--no-browser")
    return command


def lab_environment(base: Mapping[str, str], token: str) -> dict[str, str]:
    """The server's environment (kernels and terminals inherit it): the venv's bin first on PATH, the token."""
    env = dict(base)
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([venv_bin, *path])
    env["JUPYTER_TOKEN"] = token
    return env


def lab_url(port: int, token: str) -> str:
    return f"http://{LOOPBACK}:{port}/lab?token={token}"


def launch(notebook_dir: str | Path, *, open_browser: bool = True) -> int:
    """Start the sandbox (or reuse it), run JupyterLab until it stops, and return its exit code."""
    from labkit import sandbox  # the client side of the sandbox: boto3 is only loaded here

    was_running = bool(sandbox.status().get("running"))
    state = sandbox.up(quiet=True)
    print(f"sandbox: AWS API at {state.endpoint_url}", flush=True)
    port, token = free_port(), secrets.token_urlsafe(24)
    command = lab_command(notebook_dir, port, open_browser=open_browser)
    print(f"JupyterLab (stop it with Ctrl-C twice): {lab_url(port, token)}", flush=True)
    # Ctrl-C reaches JupyterLab too (one process group): it asks, then shuts its kernels down; this process
    # only waits for it, so it never kills the server halfway.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = subprocess.Popen(command, env=lab_environment(os.environ, token)).wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if code != 0 and not was_running:
        sandbox.down(quiet=True)
        print(f"JupyterLab exited with code {code}; the sandbox this started is stopped again", file=sys.stderr)
    return code


def learner_notebooks() -> Path:
    """The learner's copies of the workbook (solutions taken out), made where missing, never overwritten."""
    from labkit.workbook.release import release_notebooks  # nbformat: only when copies are made

    release = release_notebooks()
    print(release, flush=True)
    return release.out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m labkit.workbook.lab [--notebook-dir DIR] [--no-browser]` (what `make lab` runs): without a
    folder, JupyterLab opens the learner's copies of the notebooks in the labkit home."""
    from labkit.errors import LabkitError

    parser = argparse.ArgumentParser(prog="python -m labkit.workbook.lab", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--notebook-dir", default=None, help="the folder JupyterLab opens (default: your copies of the notebooks)"
    )
    parser.add_argument("--no-browser", action="store_true", help="only print the link")
    args = parser.parse_args(argv)
    if args.notebook_dir is not None and not Path(args.notebook_dir).is_dir():
        print(
            f"error: notebook-dir: {args.notebook_dir} is not a folder\n  fix: run it from the repository",
            file=sys.stderr,
        )
        return 2
    try:
        folder = args.notebook_dir if args.notebook_dir is not None else learner_notebooks()
        return launch(folder, open_browser=not args.no_browser)
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
