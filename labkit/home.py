"""Where labkit keeps its state: LABKIT_HOME, default `.labkit/` in the repository (or the current directory)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from labkit.errors import LabkitError


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


def labkit_home(create: bool = True) -> Path:
    """The labkit home directory; created 0700 (and checked writable) when `create` is true."""
    home = Path(os.environ.get("LABKIT_HOME") or _default_home()).expanduser().resolve()
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
