"""The learners of a one-machine hub: real, unprivileged system accounts, so the operating system keeps them apart.

`labkit class hub-learners create --names ada,grace` makes one account per learner (a private 0700 home, the
group `labkit-learners` that the hub admits, a generated password written to a 0600 file for the instructor to
hand out, never printed) and, when the hub runs, its hub user. `delete` stops everything the learner still runs,
removes the hub user, the account and its home. Both are dry runs without `--yes`. Only accounts in the learners'
group are ever touched: an existing account of anyone else (root, a service, a colleague) is refused by name.

Learners sign in to the hub with their account's name and password (PAM: the hub checks them as `login` would;
a learner changes theirs with `passwd` in a JupyterLab terminal).

Runs in the instructor's `labkit` command, as root (adding accounts needs it).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home, private_dir
from labkit.hub.cleanup import stop_everything_of
from labkit.hub.learners import GROUP, is_learner, learners
from labkit.inputs import check_output_folder, split_names

NAME = re.compile(r"[a-z][a-z0-9_-]{0,30}")  # a portable system user name (useradd, JupyterHub's lower case)
PASSWORD_BYTES = 12  # 16 URL-safe characters


@dataclass
class AccountsReport:
    """What create or delete did (or would do, in a dry run), one line per learner."""

    action: str
    dry_run: bool
    rows: list[tuple[str, str]] = field(default_factory=list)  # (name, what happened)
    files: dict[str, str] = field(default_factory=dict)  # name -> password file
    failed: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        width = max([len(name) for name, _ in self.rows] + [7])
        lines = [f"{'learner'.ljust(width)}  {'dry run: would ' if self.dry_run else ''}{self.action}"]
        lines += [f"{name.ljust(width)}  {what}" for name, what in self.rows]
        if self.dry_run:
            lines.append(f"nothing was changed: run again with --yes to {self.action}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "dry_run": self.dry_run, "ok": self.ok, "rows": self.rows, "files": self.files}


def parse_names(names: str | Iterable[str]) -> list[str]:
    """'ada,grace' -> checked account names, in order; a bad one (or a repeat) is refused by name."""
    chosen = split_names(names)  # an empty item or a repeat is refused, not dropped
    for name in chosen:
        if not NAME.fullmatch(name):
            raise ConfigError(
                f"{name!r} cannot be a system account name",
                field="--names",
                fix="use lower-case letters, digits, '-' or '_', starting with a letter, at most 31 characters",
            )
    return chosen


def passwords_dir(folder: str | Path | None = None) -> Path:
    """Where the password files go: the given folder, else LABKIT_HOME/hub-learners (0700)."""
    return Path(folder).expanduser() if folder else labkit_home() / "hub-learners"


def require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise LabkitError(
            "adding and removing system accounts needs root",
            field="user",
            fix=f"run it as root: sudo .venv/bin/labkit class hub-learners {command} ...",
        )


def create(names: str | Iterable[str], *, yes: bool = False, folder: str | Path | None = None,
           hub: Any = None) -> AccountsReport:  # fmt: skip
    """Create each learner's account (a dry run unless `yes`); an existing learner is kept as it is."""
    chosen = parse_names(names)
    if folder:
        check_output_folder(folder, field="--dir")
    report = AccountsReport("create", dry_run=not yes)
    plan: list[str] = []
    for name in chosen:
        if is_learner(name):
            report.rows.append((name, "exists already: kept (password unchanged)"))
        elif _exists(name):
            report.rows.append((name, f"refused: {name} is an account that is not a learner's (not in {GROUP})"))
            report.failed = True
        else:
            plan.append(name)
            report.rows.append((name, "create the account, its 0700 home, a password file"))
    if not yes or report.failed:
        return report
    require_root("create")
    target = private_dir(passwords_dir(folder))
    _run(["groupadd", "--force", "--system", GROUP])
    report.rows = [row for row in report.rows if row[0] not in plan]
    for name in plan:
        _run(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", GROUP,
              "--comment", "labkit learner", name])  # fmt: skip
        home = Path(pwd.getpwnam(name).pw_dir)
        home.chmod(0o700)  # whatever HOME_MODE says: nobody else reads a learner's home
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        _run(["chpasswd"], stdin=f"{name}:{password}\n")
        report.files[name] = str(_write_password(target / f"{name}.txt", name, password, hub))
        if hub is not None:
            hub.add_user(name)
        report.rows.append((name, f"created; password in {report.files[name]}"))
    return report


def delete(names: str | Iterable[str] | None, *, yes: bool = False, folder: str | Path | None = None,
           hub: Any = None) -> AccountsReport:  # fmt: skip
    """Stop everything each learner runs, remove their hub user, account, home and password file (a dry run
    unless `yes`); without names, every learner."""
    chosen = parse_names(names) if names else learners()
    if folder:
        check_output_folder(folder, field="--dir")
    report = AccountsReport("delete", dry_run=not yes)
    for name in chosen:
        if not is_learner(name):
            report.rows.append(
                (name, f"refused: not a learner account (not in {GROUP})" if _exists(name) else "no such account")
            )
            report.failed = report.failed or _exists(name)
            continue
        if not yes:
            report.rows.append(
                (name, "stop their processes and hub server, delete the account, home and password file")
            )
            continue
        require_root("delete")
        if hub is not None:
            hub.remove_user(name)  # stops their server first (the hub's post-stop hook runs)
        stopped = stop_everything_of(name)
        _run(["userdel", "--remove", name])
        (passwords_dir(folder) / f"{name}.txt").unlink(missing_ok=True)
        report.rows.append((name, f"deleted ({len(stopped)} leftover processes stopped)"))
    return report


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _write_password(path: Path, name: str, password: str, hub: Any) -> Path:
    """One learner's sign-in, 0600 from the first byte (the instructor hands it over; never printed)."""
    address = getattr(hub, "public_url", None) or "the hub's address"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(
            f"labkit hub sign-in for {name}\n"
            f"  address:  {address}\n  username: {name}\n  password: {password}\n"
            "Change the password after signing in: open a Terminal in JupyterLab and run `passwd`.\n"
        )
    return path


def _run(command: list[str], stdin: str | None = None) -> None:
    program = shutil.which(command[0]) or f"/usr/sbin/{command[0]}"
    done = subprocess.run([program, *command[1:]], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise LabkitError(
            f"{command[0]} failed: {(done.stderr or done.stdout).strip()}",
            field=command[0],
            fix="read the message; on a machine without shadow-utils (useradd), add the accounts by hand",
        )
