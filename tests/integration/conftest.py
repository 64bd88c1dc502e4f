"""Integration tests: a real sandbox (moto server + MariaDB) in a temporary LABKIT home, shared by the session.

Every test in this folder is marked `integration`, so `pytest -m "not integration"` runs the fast half. Run over
several cores (pytest-xdist), each worker is a session of its own with its own sandbox in its own LABKIT home, and
each module of this folder is one unit of work (support/scheduling.py): the tests that share a module's lab run
on one worker, in order, as they would in a single process.
"""

from __future__ import annotations

import os

import pytest

from labkit.aws.backend import is_loopback_url
from labkit.sandbox.procs.settings import ENDPOINT_DELAY_ENV

# Every sandbox these tests start moves a cluster endpoint to a new writer at once, as before the delay existed:
# their tests measure the databases, not DNS. test_failover_lab.py starts its own sandbox with a short delay.
os.environ.setdefault(ENDPOINT_DELAY_ENV, "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox_home(tmp_path_factory: pytest.TempPathFactory):
    """A real sandbox (moto server + MariaDB) in a temporary LABKIT home, for the whole test session."""
    from labkit import sandbox

    home = tmp_path_factory.mktemp("labkit-home")
    previous = os.environ.get("LABKIT_HOME")
    os.environ["LABKIT_HOME"] = str(home)
    state = sandbox.up(quiet=True)
    assert is_loopback_url(state.endpoint_url)
    yield home
    sandbox.down(quiet=True)
    if previous is None:
        os.environ.pop("LABKIT_HOME", None)
    else:
        os.environ["LABKIT_HOME"] = previous


@pytest.fixture
def sandbox_backend(sandbox_home):
    """A SandboxBackend on a freshly reset sandbox."""
    from labkit import sandbox
    from labkit.sandbox.backend import SandboxBackend

    sandbox.reset()
    return SandboxBackend()


@pytest.fixture
def own_home(tmp_path, monkeypatch):
    """A LABKIT home of the test's own (so its own daemon, which it may stop, kill or restart); stopped at the end."""
    from labkit import sandbox

    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    sandbox.down(quiet=True)
