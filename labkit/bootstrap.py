"""Install what the sandbox needs outside Python (MariaDB server and client, sysbench), or say how.

Runs with the system python before the virtualenv exists (standard library only):
`python3 labkit/bootstrap.py` (not through the labkit package, whose imports need the venv).
On Debian/Ubuntu as root or with sudo it installs with apt; elsewhere it
prints the exact command and stops with a non-zero exit.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"])
APT_PACKAGES = {"mariadbd": "mariadb-server", "mariadb": "mariadb-client", "sysbench": "sysbench"}


def missing_programs() -> list[str]:
    """Programs the lab needs that are not installed (LABKIT_MARIADBD stands in for mariadbd)."""
    missing = []
    for program in APT_PACKAGES:
        if program == "mariadbd" and os.environ.get("LABKIT_MARIADBD"):
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


def main() -> int:
    missing = missing_programs()
    if not missing:
        return 0
    packages = sorted({APT_PACKAGES[p] for p in missing})
    prefix = _sudo_prefix()
    if platform.system() == "Linux" and shutil.which("apt-get") and prefix is not None:
        print(f"bootstrap: installing {' '.join(packages)} with apt-get", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", *packages], check=True, env=env)
        still = missing_programs()
        if still:
            print(f"bootstrap: still missing after apt-get: {', '.join(still)}", file=sys.stderr)
            return 1
        return 0
    if platform.system() == "Darwin":
        how = "brew install mariadb sysbench"
    elif shutil.which("apt-get"):
        how = f"sudo apt-get install {' '.join(packages)}"
    else:
        how = "install MariaDB (server and client, 10.6 or newer) and sysbench with your package manager"
    print(
        f"bootstrap: missing {', '.join(missing)}.\n"
        f"  install them with:  {how}\n"
        "  or point LABKIT_MARIADBD at an existing mariadbd, then run make again.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
