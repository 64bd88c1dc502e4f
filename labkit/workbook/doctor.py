"""Is this machine ready for the lab? One table of checks, each with a plain status and detail."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
from dataclasses import dataclass

import pandas as pd

from labkit.aws.backend import Backend, get_backend
from labkit.errors import LabkitError

PACKAGES = ("labkit", "boto3", "moto", "pandas", "sqlalchemy", "pymysql", "ipywidgets", "jupyterlab")


@dataclass
class Check:
    check: str
    ok: bool
    detail: str


def _version_of(program: str, *args: str) -> str | None:
    from labkit.workbook.bootstrap import SBIN

    path = shutil.which(program, path=SBIN)
    if not path:
        return None
    out = subprocess.run([path, *args], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else path


def _package_checks() -> list[Check]:
    checks = [Check("python", True, platform.python_version())]
    for name in PACKAGES:
        try:
            checks.append(Check(name, True, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(name, False, "not installed: run `make lab` or `pip install -e .`"))
    return checks


def _program_checks(backend: Backend) -> list[Check]:
    if backend.name != "sandbox":
        return []
    from labkit.sandbox.engines.mariadb import find_binaries

    checks = []
    try:
        binaries = find_binaries()
        checks.append(Check("mariadb server", True, binaries.version().replace(str(binaries.mariadbd), "mariadbd")))
    except LabkitError as exc:
        checks.append(Check("mariadb server", False, exc.fix or exc.message))
    client = _version_of("mariadb", "--version")
    checks.append(Check("mariadb client", client is not None, client or "not found: make lab installs it"))
    bench = _version_of("sysbench", "--version")
    checks.append(Check("sysbench", bench is not None, bench or "not found: make lab installs it"))
    return checks


def _backend_checks(backend: Backend) -> list[Check]:
    checks = [Check("backend", True, backend.name)]
    if backend.name == "sandbox":
        from labkit import sandbox

        info = sandbox.status()
        if not info["running"]:
            return [*checks, Check("sandbox", False, "not running: run `labkit.sandbox.up()`")]
        checks.append(Check("sandbox", True, f"running, AWS API at {info['endpoint_url']}"))
    try:
        checks.append(Check("AWS API", True, f"account {backend.account_id()}, region {backend.region}"))
    except Exception as exc:  # any failure here is the answer the learner needs
        checks.append(Check("AWS API", False, f"{type(exc).__name__}: {exc}"))
    return checks


def environment_report(backend: Backend | None = None) -> pd.DataFrame:
    """Everything the lab needs, checked: backend, sandbox, AWS API, MariaDB, sysbench, package versions."""
    backend = backend or get_backend()
    checks = [*_backend_checks(backend), *_program_checks(backend), *_package_checks()]
    frame = pd.DataFrame([c.__dict__ for c in checks])
    frame["ok"] = frame["ok"].map({True: "ok", False: "MISSING"})
    return frame.rename(columns={"ok": "status"}).set_index("check")
