"""Engine templates shared by every labkit home of one local user, made once and checked before each use.

Runs in the daemon (an engine's `prepare`). A template is an initialised data directory that every new database
server starts as a copy of; making one (mariadb-install-db) costs one to two seconds, and a new home used to pay it
on its first `up`. A shared template holds no secret: each server gets the home's own hidden passwords at its first
start (the engine's business). It lives in the user's cache folder ($XDG_CACHE_HOME/labkit, else ~/.cache/labkit)
and is used only when nobody but its owner (or root) can have changed it: every folder on the way to it is owned by
the daemon's user or root and writable by nobody else (a sticky folder such as /tmp is fine, as no one can rename
another's entries in it), and everything in it is the daemon's user's own, for its owner only, without links. Under
root the same rules hold, with root as the owner. When the cache folder fails them, the home makes its own template
and says why in its log.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from labkit.errors import SandboxError
from labkit.home import private_dir

log = logging.getLogger(__name__)
READY = ".labkit-ready"  # written last: a template without it was interrupted and is never used
BUILDING = ".building-"  # the prefix of a template being made (renamed into place when whole)
STALE_BUILD_SECONDS = 3600.0  # a build folder this old was left by a process that died while making it


def cache_root() -> Path:
    """The user's labkit cache folder (not created)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache") / "labkit"


def untrusted_reason(path: Path) -> str | None:
    """Why `path` (a template folder) cannot be trusted, or None when only its owner or root can have written it."""
    me = os.geteuid()
    resolved = path.resolve()
    for folder in [*reversed(resolved.parents), resolved]:
        try:
            info = os.lstat(folder)
        except OSError as exc:
            return f"{folder} cannot be read ({exc.strerror or exc})"
        if info.st_uid not in (0, me):
            return f"{folder} belongs to another user (uid {info.st_uid})"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            return f"{folder} can be written by other users (mode {stat.S_IMODE(info.st_mode):o})"
    for entry in [resolved, *resolved.rglob("*")]:
        info = os.lstat(entry)
        if stat.S_ISLNK(info.st_mode) or not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            return f"{entry} is not a plain file or folder"
        if info.st_uid != me:
            return f"{entry} belongs to another user (uid {info.st_uid})"
        if info.st_mode & 0o077:
            return f"{entry} is open to other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def shared_template(name: str, build: Callable[[Path], None], fallback: Path) -> Path:
    """The ready template `name` in the user's cache folder, made there by `build(folder)` when missing.

    `build` fills an empty owner-only folder and raises a SandboxError on failure. Two daemons may make it at
    once: each builds in its own folder and the first rename wins. When the cache folder cannot be trusted or
    written, the template is made (once) at `fallback`, inside the home, instead.
    """
    root = cache_root()
    try:
        if not root.exists():  # an existing one keeps its mode: one opened to others is refused below, not fixed
            private_dir(root)
    except OSError as exc:
        log.warning("the shared template folder %s cannot be made (%s); this home makes its own", root, exc)
        return _ready_at(fallback, build)
    template = root / name
    reason = untrusted_reason(root)
    if reason is None and (template / READY).exists():
        reason = untrusted_reason(template)
        if reason is None:
            return template
    if reason is not None:
        log.warning("not using the shared template in %s: %s; this home makes its own", root, reason)
        return _ready_at(fallback, build)
    _remove_stale_builds(root)
    building = Path(tempfile.mkdtemp(prefix=f"{BUILDING}{name}-", dir=root))
    try:
        _build(building, build)
        for _attempt in (1, 2):
            try:
                building.rename(template)
                break
            except OSError:  # another daemon's finished first, or a folder without READY is in the way
                if (template / READY).exists():
                    break
                shutil.rmtree(template, ignore_errors=True)  # an unfinished template: never a database's data
    finally:
        shutil.rmtree(building, ignore_errors=True)
    reason = untrusted_reason(template)
    if reason is not None:
        raise SandboxError(f"the template just made is not safe to use: {reason}", field="template", fix=str(root))
    return template


def _ready_at(folder: Path, build: Callable[[Path], None]) -> Path:
    """The template at `folder` (in the home), made there when it is not whole."""
    if (folder / READY).exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # a half-made template from an interrupted run: no data in it
    private_dir(folder)
    _build(folder, build)
    return folder


def _build(folder: Path, build: Callable[[Path], None]) -> None:
    build(folder)
    fd = os.open(folder / READY, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.close(fd)
    owner_only(folder)


def owner_only(tree: Path) -> None:
    """Take every group and other permission bit off `tree` and everything in it (symlinks are not followed)."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        if mode & 0o077:
            path.chmod(stat.S_IMODE(mode) & 0o700)


def _remove_stale_builds(root: Path) -> None:
    """Folders a daemon that died while making a template left behind (an hour old: no build takes that long)."""
    for leftover in root.glob(f"{BUILDING}*"):
        try:
            if time.time() - leftover.stat().st_mtime > STALE_BUILD_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue
