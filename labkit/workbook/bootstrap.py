"""Install what the sandbox needs outside Python (each engine's server and client, and the C benchmark it is
compared with: for Aurora MySQL, MariaDB and sysbench), or say how.

What to install comes from the engine descriptions (labkit/engines: each one's `setup`). With --browser it also
installs Chromium, which the browser test of the web app drives (`make test` asks for it; `make lab` does
not need it).

Runs with the system python before the virtualenv exists (standard library only):
`python3 labkit/workbook/bootstrap.py` (not through the labkit package, whose imports need the venv; the
engine descriptions are standard library only and are loaded by path). On Debian/Ubuntu as root or with sudo
it installs with apt; elsewhere it prints the exact command and stops with a non-zero exit.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"])
BROWSER_PACKAGES = {"chromium": "chromium"}  # Debian's package; Ubuntu's is a snap shim, so LABKIT_CHROMIUM exists


def _engines() -> dict[str, Any]:
    """labkit's engine descriptions: from the package inside the venv, else loaded by path as a package of its
    own (the system Python has no labkit and none of its dependencies)."""
    try:
        from labkit.engines import ENGINES
    except ImportError:
        folder = Path(__file__).resolve().parents[1] / "engines"
        spec = importlib.util.spec_from_file_location(
            "labkit_engines", folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # the descriptions' relative imports find their package here
        spec.loader.exec_module(module)
        ENGINES = module.ENGINES
    return ENGINES


SETUPS = [engine.setup for engine in _engines().values()]
APT_PACKAGES = {program: package for setup in SETUPS for program, package in setup.debian_packages.items()}
BREW_PACKAGES = tuple(dict.fromkeys(package for setup in SETUPS for package in setup.brew_packages))
SERVER_VARIABLES = {setup.server_program: setup.server_variable for setup in SETUPS}  # stands in for the server


def missing_programs(browser: bool = False) -> list[str]:
    """Programs the lab needs that are not installed (an engine's server variable, LABKIT_MARIADBD for
    mariadbd, stands in for its server)."""
    missing = []
    for program in {**APT_PACKAGES, **(BROWSER_PACKAGES if browser else {})}:
        if program in SERVER_VARIABLES and os.environ.get(SERVER_VARIABLES[program]):
            continue
        if program == "chromium" and os.environ.get("LABKIT_CHROMIUM"):
            continue
        if not shutil.which(program, path=SBIN):
            missing.append(program)
    return missing


def _sudo_prefix() -> list[str] | None:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def main(argv: list[str] | None = None) -> int:
    browser = "--browser" in (argv or [])
    missing = missing_programs(browser)
    if not missing:
        return 0
    packages = sorted({{**APT_PACKAGES, **BROWSER_PACKAGES}[p] for p in missing})
    prefix = _sudo_prefix()
    if platform.system() == "Linux" and shutil.which("apt-get") and prefix is not None:
        print(f"bootstrap: installing {' '.join(packages)} with apt-get", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", *packages], check=True, env=env)
        still = missing_programs(browser)
        if still:
            print(f"bootstrap: still missing after apt-get: {', '.join(still)}", file=sys.stderr)
            return 1
        return 0
    if platform.system() == "Darwin":
        how = f"brew install {' '.join(BREW_PACKAGES)}" + (" && brew install --cask chromium" if browser else "")
    elif shutil.which("apt-get"):
        how = f"sudo apt-get install {' '.join(packages)}"
    else:
        how = f"install {'; '.join(setup.other_systems for setup in SETUPS)} with your package manager"
    servers = ", ".join(f"{variable} at an existing {program}" for program, variable in SERVER_VARIABLES.items())
    print(
        f"bootstrap: missing {', '.join(missing)}.\n"
        f"  install them with:  {how}\n"
        f"  or point {servers} (LABKIT_CHROMIUM at a Chromium), then run make again.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
