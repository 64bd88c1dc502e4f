"""nbval setup: every notebook runs against a fresh sandbox in a temporary LABKIT home.

`make notebooks` loads this as a plugin (`-p nbval_setup`, with tests/notebooks on PYTHONPATH): it lives here,
not next to the notebooks, so the learner's JupyterLab file browser shows notebooks only. pytest fixtures never
run for nbval cells, so the sandbox starts in pytest_sessionstart, before any kernel starts. Kernels inherit
this process's environment: fake credentials, the sandbox endpoint on loopback, and no AWS profile.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_home: str | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _home
    for name in list(os.environ):
        if name.startswith("AWS_") or name in ("LABKIT_BACKEND", "LABKIT_SANDBOX_PORT"):
            del os.environ[name]
    _home = tempfile.mkdtemp(prefix="labkit-nbval-")
    os.environ.update(
        LABKIT_HOME=_home,
        LABKIT_BACKEND="sandbox",
        PYTHONHASHSEED="0",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    from labkit import sandbox
    from labkit.aws.backend import is_loopback_url

    state = sandbox.up(quiet=True)
    exports = sandbox.env_exports()
    if not is_loopback_url(exports["AWS_ENDPOINT_URL"]):
        pytest.exit(f"refusing to run notebooks: {state.endpoint_url} is not on loopback", returncode=3)
    os.environ.update(exports)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _home is None:
        return
    from labkit import sandbox

    sandbox.down(quiet=True)
    shutil.rmtree(_home, ignore_errors=True)
