"""When a learner's server stops (they stop it, the idle culler culls it, the hub shuts down), nothing of theirs
keeps running: their sandbox is stopped as they would stop it (`labkit sandbox down`, so the databases shut down
cleanly and the lab is kept for next time), then any process of theirs still alive (a kernel the server left, a
tunnel, a terminal's background job) gets SIGTERM and, after a grace period, SIGKILL.

A learner account is a hub-only account, so "every process of that uid" is exactly what their server started.
Only accounts in the learners' group with an ordinary uid are ever swept (learners.is_learner).

Runs in the hub (root), as the spawner's post-stop hook, and in `labkit class hub-learners delete`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from labkit.hub.learners import GROUP, is_learner
from labkit.hub.singleuser import learner_environment

log = logging.getLogger("labkit.hub")
SANDBOX_DOWN_TIMEOUT = 90.0  # `down` waits up to 15 s per daemon; a lab with many databases takes longer
GRACE = 5.0  # seconds between SIGTERM and SIGKILL for what is left


async def post_stop_hook(spawner: Any) -> None:
    """JupyterHub's Spawner.post_stop_hook: sweep the learner in a thread (the hub's event loop keeps serving)."""
    name = spawner.user.name
    stopped = await asyncio.to_thread(stop_everything_of, name)
    if stopped:
        spawner.log.info("labkit: stopped %d leftover processes of %s: %s", len(stopped), name, stopped)


def stop_everything_of(name: str) -> list[int]:
    """Stop `name`'s sandbox, then every process of theirs still alive; returns the pids that had to be signalled."""
    if not is_learner(name):
        log.warning("labkit: %s is not in %s: its processes are left alone", name, GROUP)
        return []
    account = pwd.getpwnam(name)
    _sandbox_down(account)
    return sweep(account.pw_uid)


def _sandbox_down(account: pwd.struct_passwd) -> None:
    """`labkit sandbox down` as the learner, in their LABKIT home (nothing to do when it never started)."""
    env = learner_environment(account.pw_name, Path(account.pw_dir))
    if not (Path(env["LABKIT_HOME"]) / "sandbox.json").exists() and not _has_processes(account.pw_uid):
        return
    try:
        done = subprocess.run(
            [sys.executable, "-m", "labkit.cli.main", "sandbox", "down"],
            user=account.pw_uid, group=account.pw_gid, extra_groups=[], env=env, cwd=account.pw_dir,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=SANDBOX_DOWN_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        log.error(
            "labkit: `labkit sandbox down` for %s took over %.0f s; sweeping", account.pw_name, SANDBOX_DOWN_TIMEOUT
        )
        return
    if done.returncode != 0:
        log.error("labkit: `labkit sandbox down` for %s failed: %s", account.pw_name, done.stderr.strip()[-500:])


def processes_of(uid: int) -> list[int]:
    """Every live process whose real uid is `uid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:"):
                if int(line.split()[1]) == uid and _state(status) != "Z":
                    found.append(int(entry.name))
                break
    return sorted(found)


def _state(status: str) -> str:
    for line in status.splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return "?"


def _has_processes(uid: int) -> bool:
    return bool(processes_of(uid))


def sweep(uid: int, grace: float = GRACE) -> list[int]:
    """SIGTERM every process of `uid`, then SIGKILL what is left after `grace` seconds; returns those signalled."""
    if uid < 1000:
        raise ValueError(f"refusing to sweep system uid {uid}")
    signalled = processes_of(uid)
    for pid in signalled:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in processes_of(uid):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes_of(uid)
    if left:
        log.error("labkit: processes of uid %d survived SIGKILL: %s", uid, left)
    return signalled


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
