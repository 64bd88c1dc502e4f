"""Test setup: fake credentials, loopback-only endpoints, and an in-process moto backend.

No test may ever reach real AWS: the session refuses to start unless every configured AWS endpoint is on
loopback, and the credentials are fake.
"""

from __future__ import annotations

import os

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

from labkit.aws.backend import is_loopback_url  # noqa: E402


def pytest_sessionstart(session: pytest.Session) -> None:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and not is_loopback_url(endpoint):
        pytest.exit(f"refusing to run: AWS_ENDPOINT_URL={endpoint} is not on loopback", returncode=3)


from support.backends import InProcessBackend, moto_speedups, strict_moto_backend  # noqa: E402


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
