"""The sandbox's state file: ports, pids and the endpoint map, written by the daemon, read by everyone else.

Runs in every sandbox process: the daemon writes it; the client, the session plugin and the app hosts read it
(the file is how they learn where the API and each database are). Light on purpose: standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import SandboxNotRunning
from labkit.home import labkit_home
from labkit.sandbox.processes import pid_alive, process_args

STATE_FILE = "sandbox.json"
CHANGES_FILE = "api-changes"
DAEMON_MODULE = "labkit.sandbox.daemon.main"


@dataclass
class SandboxState:
    """What a running sandbox looks like from outside: where its API is and what its databases are."""

    daemon_pid: int
    endpoint_url: str
    port: int
    region: str
    home: str
    log_file: str
    started_at: float
    ready: bool = False
    generation: int = 0
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # EC2 instance id -> its web app process

    def __repr__(self) -> str:
        count = len(self.instances)
        return (
            f"<sandbox ready: AWS API at {self.endpoint_url}, region {self.region}, "
            f"{count} DB instance{'s' if count != 1 else ''}>"
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def state_path(home: Path | None = None) -> Path:
    return (home or labkit_home()) / STATE_FILE


def changes_path(home: Path | None = None) -> Path:
    """The file holding the count of mutating API calls (see daemon.ApiChanges)."""
    return (home or labkit_home()) / CHANGES_FILE


def read_changes(home: Path | None = None) -> int:
    """The count of mutating API calls so far (-1 when unknown: assume everything changed)."""
    try:
        return int(changes_path(home).read_text())
    except (OSError, ValueError):
        return -1


def read_state(home: Path | None = None) -> SandboxState | None:
    """The recorded state, or None when no sandbox was started (or the file is unreadable)."""
    path = state_path(home)
    try:
        return SandboxState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return None


def write_state(state: SandboxState, home: Path) -> None:
    """Write atomically, so a reader never sees half a file."""
    path = state_path(home)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the owner's only, from the first byte
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(json.dumps(state.to_json(), indent=2, sort_keys=True))
    os.replace(tmp, path)


def is_daemon_of(pid: int | None, home: Path) -> bool:
    """True when `pid` is alive and runs the sandbox daemon of this home (its command line says so).

    After a reboot or a crash the state file's pid may belong to another process; only the command line tells.
    Without /proc (macOS) the command line is unknown, and a live pid is taken at its word.
    """
    if not pid or not pid_alive(pid):
        return False
    args = process_args(pid)
    if not args:
        return True
    if DAEMON_MODULE not in args or "--home" not in args:
        return False
    given = args[args.index("--home") + 1 :]
    return bool(given) and Path(given[0]).expanduser().resolve() == home.expanduser().resolve()


def is_running(state: SandboxState | None, home: Path | None = None) -> bool:
    """True when the recorded daemon is ready and still the one that wrote the state file."""
    return state is not None and state.ready and is_daemon_of(state.daemon_pid, home or labkit_home(create=False))


def require_running(home: Path | None = None) -> SandboxState:
    """The state of a running sandbox, or a SandboxError that says how to start one."""
    state = read_state(home)
    if not is_running(state, home):
        raise SandboxNotRunning(
            "the sandbox is not running",
            field="sandbox",
            fix="start it with `labkit sandbox up` in a terminal, or `labkit.sandbox.up()` in a notebook",
        )
    assert state is not None
    return state
