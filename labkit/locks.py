"""Exclusive locks on files in the LABKIT home: one owner per home, one apply or destroy per lab and learner.

flock(2) locks an open file description, so two threads of one process exclude each other as two processes do,
and the kernel releases a lock when its holder dies: a crash never leaves a home locked. The holder writes its pid
into the file, for a waiting caller's message and for `labkit sandbox down` to find a daemon by.

Here, not in labkit.sandbox: the lab's apply and destroy run against real AWS too and must not import the sandbox,
and the sandbox daemon imports only light modules. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

SANDBOX_LOCK = "sandbox.lock"  # held by `labkit sandbox up` / `down` while starting or stopping
DAEMON_LOCK = "sandbox-daemon.lock"  # held by the sandbox daemon for its whole life
LAB_LOCKS = "locks"  # one file per lab and learner: held by apply and destroy


def sandbox_lock_path(home: Path) -> Path:
    return home / SANDBOX_LOCK


def daemon_lock_path(home: Path) -> Path:
    return home / DAEMON_LOCK


def lab_lock_path(home: Path, lab: str, learner: str) -> Path:
    """Lab and learner are validated name parts (letters, digits, hyphens), safe in a file name."""
    return home / LAB_LOCKS / f"{lab}--{learner}.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # never inherited by a child process


def _record_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def holder_pid(path: Path) -> int | None:
    """The pid the last holder wrote (it may have exited since: check the lock before trusting it)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def try_acquire(path: Path) -> int | None:
    """Take the lock without waiting: its open descriptor (close it to release), or None when another holds it."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    _record_holder(fd)
    return fd


def is_held(path: Path) -> bool:
    """True when some process holds the lock right now."""
    if not path.exists():
        return False
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's shared lock
    return False


@contextlib.contextmanager
def exclusive(path: Path, on_wait: Callable[[int | None], None] | None = None) -> Iterator[None]:
    """Hold the lock for the `with` block; when another holds it, call `on_wait(its pid)` once, then wait.

    The wait ends when the holder releases or dies; Ctrl-C (a notebook's stop button) interrupts it.
    """
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(holder_pid(path))
            fcntl.flock(fd, fcntl.LOCK_EX)
        _record_holder(fd)
        yield
    finally:
        os.close(fd)
