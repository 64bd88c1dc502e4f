"""Where labkit keeps its state: LABKIT_HOME, default `.labkit/` in the repository (or the current directory)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from labkit.errors import ConfigError, LabkitError

NAME_MAX = 255  # bytes in one folder name (Linux and macOS file systems)
# The longest home: a database server's files are HOME/data/instances/<63-character id>/<schema>/<table>.ibd, and
# MariaDB refuses paths longer than its FN_REFLEN (512 bytes): 250 + 16 + 63 + 2 * 65 + 4 = 463 leaves some room.
MAX_HOME_BYTES = 250
HOME_FIX = "point LABKIT_HOME at a shorter path, e.g. `export LABKIT_HOME=$HOME/.labkit`"


def _default_home() -> Path:
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():  # an editable install inside the repository
        return here / ".labkit"
    return Path.cwd() / ".labkit"


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed and make it readable by its owner only (0700), whatever the umask."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash or a power cut leaves either the old file or the new one, whole:
    owner-only from the first byte, the data flushed to disk before the rename, and the folder (which holds the
    rename) flushed after it. On an OSError (a full disk, a read-only home) the temporary file is removed, the
    old file is left as it was, and the error is raised."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # never a partial file left behind (it would fill a full disk further)
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _within_limits(home: Path) -> Path:
    """`home`, or a LabkitError naming the limit it is past: a folder name over NAME_MAX bytes (every file call
    would fail with 'File name too long') or a path over MAX_HOME_BYTES (the databases could not start)."""
    too_long = next((part for part in home.parts if len(os.fsencode(part)) > NAME_MAX), None)
    if too_long is not None:
        raise ConfigError(
            f"the labkit home has a folder name of {len(os.fsencode(too_long))} bytes; file systems allow {NAME_MAX}",
            field="LABKIT_HOME",
            fix=HOME_FIX,
        )
    size = len(os.fsencode(str(home)))
    if size > MAX_HOME_BYTES:
        raise ConfigError(
            f"the labkit home's path is {size} bytes long; labkit allows {MAX_HOME_BYTES} (the sandbox's database "
            "files live under it, and MariaDB refuses file paths over 512 bytes)",
            field="LABKIT_HOME",
            fix=HOME_FIX,
        )
    return home


def labkit_home(create: bool = True) -> Path:
    """The labkit home directory; created 0700 (and checked writable) when `create` is true."""
    home = _within_limits(Path(os.environ.get("LABKIT_HOME") or _default_home()).expanduser().absolute())
    home = home.resolve()
    if home.exists() and not home.is_dir():
        raise LabkitError(
            f"the labkit home {home} is a file, not a directory",
            field="LABKIT_HOME",
            fix="point LABKIT_HOME at a directory, e.g. `export LABKIT_HOME=$HOME/.labkit`",
        )
    if not create:
        return home
    try:
        try:
            home.mkdir(mode=0o700, parents=True)  # one owner per home: nothing in it for other local users
            home.chmod(0o700)  # mkdir's mode is filtered by the umask; this is not
        except FileExistsError:
            pass  # an existing home keeps its mode (LABKIT_HOME may be a directory the learner chose)
        with tempfile.TemporaryFile(dir=home) as probe:  # nameless (O_TMPFILE): nothing left even on a failure
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        raise LabkitError(
            f"cannot write to the labkit home directory {home} ({exc.strerror or exc})",
            field="LABKIT_HOME",
            fix="point LABKIT_HOME at a directory you can write, e.g. `export LABKIT_HOME=$HOME/.labkit`",
        ) from None
    return home
