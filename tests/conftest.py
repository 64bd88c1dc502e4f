"""Test setup: fake credentials, loopback-only endpoints, and an in-process moto backend.

No test may ever reach real AWS: the session refuses to start unless every configured AWS endpoint is on
loopback, the credentials are fake, and the credential chain never asks the instance-metadata address.
"""

from __future__ import annotations

import os

# The user's own config file, read by the guard below before it is replaced by an empty one.
_USER_CONFIG_FILE = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"

# Before boto3 or moto is imported anywhere: fake credentials, no profile, strict EC2 validation.
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN", "LABKIT_BACKEND"):
    os.environ.pop(_var, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    MOTO_ENABLE_AMI_VALIDATION="true",
    MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION="true",
    MOTO_ENABLE_KEYPAIR_VALIDATION="true",
    PYTHONHASHSEED="0",
)

import pytest  # noqa: E402
from support.aws_guard import foreign_endpoints, network_lookups, refusal, without_network_lookups  # noqa: E402

without_network_lookups(os.environ)  # no instance-metadata or container credentials lookup, even with no keys


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to start while any AWS endpoint setting (variable or config file) points off loopback."""
    found = foreign_endpoints(os.environ, extra_files=(_USER_CONFIG_FILE,)) + network_lookups(os.environ)
    if found:
        pytest.exit(refusal(found), returncode=3)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check again before every test, notebook cells included (fixtures never run for nbval cells): a test
    or a cell that set an endpoint variable off loopback, or let the credential chain ask the instance-metadata
    address, stops the run before the next one can use it."""
    found = foreign_endpoints(os.environ) + network_lookups(os.environ)
    if found:
        pytest.exit(refusal(found), returncode=3)


from support.backends import InProcessBackend, moto_speedups, strict_moto_backend  # noqa: E402


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: `-p no:xdist` still runs
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Over several cores: each integration module on one worker, every other test alone (support/scheduling.py)."""
    from support.scheduling import make_scheduler

    return make_scheduler(config, log)


@pytest.fixture
def moto_backend():
    """A Backend over a fresh in-process moto (AWS-managed IAM policies loaded), lenient as moto is."""
    from moto import mock_aws

    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield InProcessBackend.make()


@pytest.fixture
def lab_home(tmp_path, monkeypatch):
    """A private LABKIT home, so key files and lab.toml never land in the repository."""
    home = tmp_path / "labkit-home"
    monkeypatch.setenv("LABKIT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def fast_moto():
    """Session-wide speed-ups for in-process moto (support/backends.moto_speedups)."""
    yield from moto_speedups()


@pytest.fixture
def strict_backend(lab_home, fast_moto):
    """A fresh strict in-process moto account for one test (see strict_moto_backend)."""
    with strict_moto_backend() as backend:
        yield backend


@pytest.fixture(scope="module")
def region():
    """One plain in-process moto per test module, for the security tests that build labs by hand."""
    from support.labs import moto_region

    with moto_region() as backend:
        yield backend
