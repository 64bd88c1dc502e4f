"""Local processes and ports: is a pid alive and whose is it, stop it, find a free port, tie a child to its parent.

Runs in every sandbox process: the client (`up`/`down` find and stop what a sandbox left), the daemon (it starts
database servers and app hosts on free ports, bound to its own life). Standard library only, so importing it
costs a client or the session plugin nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import time
from pathlib import Path


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists and has not finished exiting.

    A zombie counts as dead only once its whole thread group has exited: the main thread of a multi-threaded
    process turns zombie first, while another thread still runs do_exit (freeing the address space) and holds
    the process's open files, so its flocks and listening sockets until it is done.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # fields[0] is the state, fields[17] num_threads
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we have
    return fields[0] != "Z" or int(fields[17]) > 1


def process_args(pid: int) -> list[str]:
    """The arguments `pid` was started with ([] when unknown: gone, or no /proc as on macOS)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return []
    return raw.removesuffix("\0").split("\0") if raw else []  # each argument ends with a NUL


def runs_in_home(pid: int, home: Path) -> bool:
    """True when an argument of `pid` (or the value of an `--option=value` one) is `home` or a path inside it:
    proof a pid from a stale state file is still ours. Compared folder by folder, never as text: a server of
    ~/lab2 is not one of ~/lab's."""
    home = home.expanduser().resolve()
    for arg in process_args(pid):
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if value.startswith("/") and Path(value).is_relative_to(home):
            return True
    return False


def all_pids() -> list[int]:
    """Every process id on this machine ([] without /proc)."""
    try:
        return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return []


KILLED_EXIT_SECONDS = 10.0  # a SIGKILLed process is gone once it has handed back its memory: on a loaded machine,
# a database server's takes a moment


def terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone (or KILLED_EXIT_SECONDS after
    the SIGKILL), so a caller that checks right after sees no survivor that is only still exiting."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + KILLED_EXIT_SECONDS
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """In a child (as `preexec_fn`): receive `signum` (SIGTERM unless the program stops cleanly on another, as
    PostgreSQL does on SIGINT) when the sandbox daemon dies, so nothing outlives it (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signum)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
