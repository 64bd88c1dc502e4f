"""Throwaway unprivileged system accounts for tests that act as another local user.

The suite runs as root here (CI too); a test that needs a second user creates one with a random name and removes
it, with its home, at the end. Not root: the test fails and says how to run it, never skips in silence.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

NOT_ROOT = (
    "this test acts as another local user, so it creates a throwaway system account and needs root; "
    "run it as root (sudo .venv/bin/pytest {path}), as CI does"
)


def require_root(path: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(NOT_ROOT.format(path=path), pytrace=False)


@contextlib.contextmanager
def throwaway_user(prefix: str = "lkt") -> Iterator[pwd.struct_passwd]:
    """A new unprivileged account with a private home; deleted (with the home and any process left) afterwards."""
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True, capture_output=True)
    account = pwd.getpwnam(name)
    Path(account.pw_dir).chmod(0o700)
    try:
        yield account
    finally:
        subprocess.run(["pkill", "-KILL", "-u", str(account.pw_uid)], capture_output=True)  # this user's only
        subprocess.run(["userdel", "--remove", name], capture_output=True)


def run_as(account: pwd.struct_passwd, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run Python `code` as `account`: the system's python3 (the project's may live under root's private home)
    with the project venv's packages on its path (botocore and the standard library are all it uses)."""
    import site

    env = {"HOME": account.pw_dir, "PATH": os.defpath, "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join(site.getsitepackages())}  # fmt: skip
    return subprocess.run(
        ["/usr/bin/python3", "-c", code], user=account.pw_uid, group=account.pw_gid, extra_groups=[], env=env,
        cwd=account.pw_dir, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
