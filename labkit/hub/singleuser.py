"""A learner's server on the hub, started as the learner: their own LABKIT home, their copies of the notebooks,
then JupyterHub's single-user server on them.

The hub (LocalProcessSpawner, root) starts `python -m labkit.hub.singleuser` as the learner's system user, from
the hub's shared, read-only venv. Before the server starts, this makes the learner's LABKIT home (`~/.labkit`,
0700) and releases their copies of the notebooks into it where missing (`release_notebooks`: solutions taken
out, an existing copy, with the learner's edits, is never overwritten, so a course update adds new notebooks
and keeps old ones as they are). Everything is written by the learner's own process, never by root in a home a
learner controls. The sandbox is not started here: 00_setup starts it on demand, and the hub's post-stop hook
(cleanup.py) stops it with the server.

Kernels and terminals inherit the environment: LABKIT_HOME, and the venv's bin first on PATH so the `labkit ...`
commands the notebooks suggest work in a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

LABKIT_HOME_IN_HOME = ".labkit"


def learner_environment(name: str, home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a learner's processes: their home, their LABKIT home, the shared venv first on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in (base or {}).items() if not k.startswith(("AWS_", "LABKIT_"))}
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != venv_bin]
    env.update(
        HOME=str(home), USER=name, LOGNAME=name, LABKIT_HOME=str(home / LABKIT_HOME_IN_HOME),
        PATH=os.pathsep.join([venv_bin, *path]), PYTHONHASHSEED="0",
    )  # fmt: skip
    return env


def prepare(home: Path) -> Path:
    """The learner's LABKIT home (0700) and their notebooks in it, made where missing; returns the notebooks' folder."""
    # labkit's modules load here only: the server's environment is built without them
    from labkit.home import labkit_home
    from labkit.workbook.release import release_notebooks  # nbformat: only here

    os.environ["LABKIT_HOME"] = str(home / LABKIT_HOME_IN_HOME)
    labkit_home()  # created 0700
    release = release_notebooks()
    print(release, flush=True)
    return release.out


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the learner's home, then become `jupyterhub-singleuser` (same pid: the hub's signals reach it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    home = Path(os.environ.get("HOME") or Path.home())
    os.environ.update(learner_environment(os.environ.get("USER", ""), home, dict(os.environ)))
    notebooks = prepare(home)
    program = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
    os.chdir(notebooks)
    os.execv(program, [program, f"--ServerApp.root_dir={notebooks}", *args])
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
