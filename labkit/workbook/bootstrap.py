"""Install what the sandbox needs outside Python (each engine's server and client, and the C benchmark it is
compared with: for Aurora MySQL, MariaDB and sysbench), or say how.

What to install comes from the engine descriptions (labkit/engines: each one's `setup`). With --browser it also
installs Chromium, which the browser test of the web app drives (`make test` asks for it; `make lab` does
not need it).

As root it also makes the unprivileged system account a server that refuses to run as root runs as
(SERVICE_ACCOUNTS: PostgreSQL's `labkit-pg`, see labkit/sandbox/engines/postgresql.py). Installing Debian's
PostgreSQL server would create and start the distribution's own cluster on PostgreSQL's default port; the sandbox
never uses it, so setup tells postgresql-common not to make one (only when it installs the server itself).

Runs with the system python before the virtualenv exists (standard library only):
`python3 labkit/workbook/bootstrap.py` (not through the labkit package, whose imports need the venv; the
engine descriptions are standard library only and are loaded by path). On Debian/Ubuntu as root or with sudo
it installs with apt; elsewhere it prints the exact command and stops with a non-zero exit.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"])
# Servers that refuse to run as root -> the account a root sandbox runs them as (the engine module names it too).
SERVICE_ACCOUNTS = {"postgres": "labkit-pg"}
NO_DISTRIBUTION_CLUSTER = Path("/etc/postgresql-common/createcluster.d/labkit-no-main-cluster.conf")
BROWSER_PACKAGES = {"chromium": "chromium"}  # Debian's package; Ubuntu's is a snap shim, so LABKIT_CHROMIUM exists


def _engines() -> dict[str, Any]:
    """labkit's engine descriptions: from the package inside the venv, else loaded by path as a package of its
    own (the system Python has no labkit and none of its dependencies)."""
    try:
        from labkit.engines import ENGINES  # inside the venv only: the system Python has no labkit
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
    search = os.pathsep.join([SBIN, *reversed(_server_folders())])
    for program in {**APT_PACKAGES, **(BROWSER_PACKAGES if browser else {})}:
        if program in SERVER_VARIABLES and os.environ.get(SERVER_VARIABLES[program]):
            continue
        if program == "chromium" and os.environ.get("LABKIT_CHROMIUM"):
            continue
        if not shutil.which(program, path=search):
            missing.append(program)
    return missing


def _server_folders() -> list[str]:
    """Debian's versioned server folders, off the PATH (/usr/lib/postgresql/15/bin), oldest first; looked for
    anew each time (apt may just have made one)."""
    return sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: [int(n) for n in re.findall(r"[0-9]+", f)])


def missing_accounts() -> list[str]:
    """As root: the service accounts of the lab's servers that refuse root, not made yet ([] for anyone else)."""
    if os.geteuid() != 0:
        return []
    needed = {account for program, account in SERVICE_ACCOUNTS.items() if program in SERVER_VARIABLES}
    missing = []
    for account in sorted(needed):
        try:
            pwd.getpwnam(account)
        except KeyError:
            missing.append(account)
    return missing


def make_accounts(accounts: list[str]) -> None:
    """Create each as a system account with its own group, no home, no shell, no password: it only runs servers."""
    for account in accounts:
        print(f"bootstrap: creating the system account {account} (the sandbox's servers run as it under root)")
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "--comment", "labkit sandbox database servers", account],
            check=True,
        )  # fmt: skip


def _no_distribution_cluster(prefix: list[str]) -> None:
    """Before apt installs Debian's PostgreSQL server: ask postgresql-common not to create (and start) its own
    cluster, which the sandbox never uses (its servers are its own processes on free ports)."""
    text = (
        "# labkit: the sandbox runs its own PostgreSQL servers on free ports; no distribution cluster on the default port\n"
        "create_main_cluster = false\n"
    )
    subprocess.run([*prefix, "mkdir", "-p", str(NO_DISTRIBUTION_CLUSTER.parent)], check=True)
    subprocess.run(
        [*prefix, "tee", str(NO_DISTRIBUTION_CLUSTER)], input=text.encode(), stdout=subprocess.DEVNULL, check=True
    )


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
        make_accounts(missing_accounts())
        return 0
    packages = sorted({{**APT_PACKAGES, **BROWSER_PACKAGES}[p] for p in missing})
    prefix = _sudo_prefix()
    if platform.system() == "Linux" and shutil.which("apt-get") and prefix is not None:
        print(f"bootstrap: installing {' '.join(packages)} with apt-get", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if "postgresql" in packages:
            _no_distribution_cluster(prefix)
        subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", *packages], check=True, env=env)
        still = missing_programs(browser)
        if still:
            print(f"bootstrap: still missing after apt-get: {', '.join(still)}", file=sys.stderr)
            return 1
        make_accounts(missing_accounts())
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
