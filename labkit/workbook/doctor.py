"""Is this machine ready for the lab? One table of checks, each with a plain status and detail.

What a backend needs besides Python packages (the sandbox: its server running, MariaDB and sysbench installed)
comes from the backend itself (`service_checks`, `program_checks`), so this report never asks which one it has.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass

import pandas as pd

from labkit.aws.backend import Backend, get_backend
from labkit.engines import ENGINES
from labkit.workbook.bootstrap import SBIN

DRIVERS = tuple(dict.fromkeys(engine.dialect.dbapi.module for engine in ENGINES.values()))  # each engine's DB-API
PACKAGES = ("labkit", "boto3", "moto", "pandas", "sqlalchemy", *DRIVERS, "ipywidgets", "jupyterlab")


@dataclass
class Check:
    check: str
    ok: bool
    detail: str


def program_version(program: str, *args: str) -> str | None:
    """The first line `program *args` prints (its path if it prints nothing); None when it is not installed.
    Looks in the sbin directories too, where distributions put database servers."""
    path = shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), SBIN]))  # PATH as it is now
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


def _backend_checks(backend: Backend) -> list[Check]:
    """The backend's name, its own service (if it runs one here), and then, if that is up, its AWS API."""
    checks = [Check("backend", True, backend.name), *(Check(*row) for row in backend.service_checks())]
    if not all(check.ok for check in checks):
        return checks
    try:
        checks.append(Check("AWS API", True, f"account {backend.account_id()}, region {backend.region}"))
    except Exception as exc:  # any failure here is the answer the learner needs
        checks.append(Check("AWS API", False, f"{type(exc).__name__}: {exc}"))
    return checks


def environment_report(backend: Backend | None = None) -> pd.DataFrame:
    """Everything the lab needs, checked: backend, its service and AWS API, the programs it needs, packages."""
    backend = backend or get_backend()
    checks = [
        *_backend_checks(backend),
        *(Check(*row) for row in backend.program_checks(program_version)),
        *_package_checks(),
    ]
    frame = pd.DataFrame([c.__dict__ for c in checks])
    frame["ok"] = frame["ok"].map({True: "ok", False: "MISSING"})
    return frame.rename(columns={"ok": "status"}).set_index("check")
