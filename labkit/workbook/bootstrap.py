"""Install what the sandbox needs outside Python (MariaDB server and client, sysbench), or say how.

With --browser it also installs Chromium, which the browser test of the web app drives (`make test` asks
for it; `make lab` does not need it).

Runs with the system python before the virtualenv exists (standard library only):
`python3 labkit/workbook/bootstrap.py` (not through the labkit package, whose imports need the venv).
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
BROWSER_PACKAGES = {"chromium": "chromium"}  # Debian's package; Ubuntu's is a snap shim, so LABKIT_CHROMIUM exists


def missing_programs(browser: bool = False) -> list[str]:
    """Programs the lab needs that are not installed (LABKIT_MARIADBD stands in for mariadbd)."""
    missing = []
    for program in {**APT_PACKAGES, **(BROWSER_PACKAGES if browser else {})}:
        if program == "mariadbd" and os.environ.get("LABKIT_MARIADBD"):
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
        how = "brew install mariadb sysbench" + (" && brew install --cask chromium" if browser else "")
    elif shutil.which("apt-get"):
        how = f"sudo apt-get install {' '.join(packages)}"
    else:
        how = "install MariaDB (server and client, 10.6 or newer) and sysbench with your package manager"
    print(
        f"bootstrap: missing {', '.join(missing)}.\n"
        f"  install them with:  {how}\n"
        "  or point LABKIT_MARIADBD at an existing mariadbd (LABKIT_CHROMIUM at a Chromium), then run make again.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
