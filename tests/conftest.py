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

from labkit.backend import is_loopback_url  # noqa: E402


def pytest_sessionstart(session: pytest.Session) -> None:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and not is_loopback_url(endpoint):
        pytest.exit(f"refusing to run: AWS_ENDPOINT_URL={endpoint} is not on loopback", returncode=3)


class InProcessBackend:
    """Factory for a labkit Backend served by moto in-process (mock_aws); see the `moto_backend` fixture."""

    @staticmethod
    def make(region: str = "us-east-1"):
        import boto3

        from labkit.backend import FAKE_CREDENTIALS, Backend

        class _InProcess(Backend):
            name = "sandbox"

            def __init__(self) -> None:
                super().__init__(region)
                # One session for the backend's life, so the strict layer's event handlers see every call.
                self._session = boto3.Session(region_name=region, **FAKE_CREDENTIALS)

            def session(self):
                return self._session

            def endpoint_url(self) -> None:
                return None

            def resolve(self, host: str, port: int) -> tuple[str, int]:
                return host, port

        return _InProcess()


@pytest.fixture
def moto_backend():
    """A Backend over a fresh in-process moto (AWS-managed IAM policies loaded), lenient as moto is."""
    from moto import mock_aws

    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield InProcessBackend.make()


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
    from labkit.backend import SandboxBackend

    sandbox.reset()
    return SandboxBackend()


# ----- provisioning tests (issue 3): a fast, strict in-process moto and a private LABKIT home -----


@pytest.fixture
def lab_home(tmp_path, monkeypatch):
    """A private LABKIT home, so key files and lab.toml never land in the repository."""
    home = tmp_path / "labkit-home"
    monkeypatch.setenv("LABKIT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def _ssm_policy_only() -> str:
    import json

    from moto.iam.aws_managed_policies import aws_managed_policies_data

    policies = json.loads(aws_managed_policies_data)
    return json.dumps({"AmazonSSMManagedInstanceCore": policies["AmazonSSMManagedInstanceCore"]})


@pytest.fixture
def only_ssm_managed_policy(monkeypatch, _ssm_policy_only):
    """Load only AmazonSSMManagedInstanceCore of moto's ~1,500 AWS-managed IAM policies (0.05 s, not 2 s)."""
    import moto.iam.models

    monkeypatch.setattr(moto.iam.models, "aws_managed_policies_data", _ssm_policy_only)


@pytest.fixture(scope="session")
def shared_botocore_loader():
    """One botocore data loader for every session: a new boto3 session otherwise re-reads each service model."""
    import functools

    import botocore.session

    original = botocore.session.create_loader
    botocore.session.create_loader = functools.lru_cache(maxsize=None)(original)
    yield
    botocore.session.create_loader = original


@pytest.fixture(scope="session")
def shared_client_classes():
    """Build each boto3 client class once (a new session otherwise rebuilds EC2's 700 methods per test)."""
    import botocore.client

    original = botocore.client.ClientCreator._create_client_class
    classes: dict = {}

    def create_client_class(self, service_name, service_model):
        key = (service_name, service_model.api_version)
        if key not in classes:
            classes[key] = original(self, service_name, service_model)
        return classes[key]

    botocore.client.ClientCreator._create_client_class = create_client_class
    yield
    botocore.client.ClientCreator._create_client_class = original


@pytest.fixture
def without_ecs_amis(monkeypatch):
    """Skip moto's 1,200 ECS-optimised AMIs (every new EC2 backend builds them; the lab never uses them)."""
    import moto.ec2.models.amis

    original = moto.ec2.models.amis.load_resource

    def load_resource(resource: str):
        return [] if "ecs/optimized_amis" in resource else original(resource)

    monkeypatch.setattr(moto.ec2.models.amis, "load_resource", load_resource)


@pytest.fixture
def strict_backend(lab_home, only_ssm_managed_policy, shared_botocore_loader, shared_client_classes, without_ecs_amis):
    """A Backend over a fresh in-process moto with the strict layer (tests/strict.py) installed.

    The layer is reachable as `strict_backend.strict` (its `refusals` list records what it refused).
    """
    from moto import mock_aws
    from strict import install_strict_layer

    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}) as mock:
        backend = InProcessBackend.make()
        backend.strict = install_strict_layer(backend)
        backend.reset_account = mock.reset  # wipe all moto state (used between fault-injection rounds)
        yield backend
