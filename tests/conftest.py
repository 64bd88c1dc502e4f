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


class InProcessBackend:
    """Factory for a labkit Backend served by moto in-process (mock_aws); see the `moto_backend` fixture."""

    @staticmethod
    def make(region: str = "us-east-1", credentials: dict[str, str] | None = None):
        """`credentials` (aws_access_key_id, aws_secret_access_key): sign as that user, e.g. an IAM user under
        moto's IAM enforcement; by default the fake credentials of the account's admin."""
        import boto3

        from labkit.aws.backend import FAKE_CREDENTIALS, Backend

        class _InProcess(Backend):
            name = "sandbox"

            def __init__(self) -> None:
                super().__init__(region)
                # One session for the backend's life, so the strict layer's event handlers see every call.
                self._session = boto3.Session(region_name=region, **(credentials or FAKE_CREDENTIALS))

            def session(self):
                return self._session

            def endpoint_url(self) -> None:
                return None

            def resolve(self, host: str, port: int) -> tuple[str, int]:
                return host, port

            def session_plugin(self) -> None:
                return None

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
    from labkit.aws.backend import SandboxBackend

    sandbox.reset()
    return SandboxBackend()


def sandbox_lab(lab: str, learner: str):
    """Reset the sandbox and apply a whole lab (writer + reader + instance); returns (config, backend).

    For module-scoped fixtures of the SQL and benchmark tests; close_engines() and close_all() after use.
    """
    import io

    from labkit import sandbox
    from labkit.aws.backend import SandboxBackend
    from labkit.config import LabConfig
    from labkit.lab.apply import apply

    sandbox.reset()
    backend = SandboxBackend()
    config = LabConfig(lab=lab, learner=learner)
    apply(config, backend, stream=io.StringIO())
    sandbox.wait_for_databases(2)
    return config, backend


# ----- provisioning tests (issue 3): a fast, strict in-process moto and a private LABKIT home -----

import contextlib  # noqa: E402


@pytest.fixture
def lab_home(tmp_path, monkeypatch):
    """A private LABKIT home, so key files and lab.toml never land in the repository."""
    home = tmp_path / "labkit-home"
    monkeypatch.setenv("LABKIT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def fast_moto():
    """Session-wide speed-ups for in-process moto that change no behaviour the lab relies on.

    - load only AmazonSSMManagedInstanceCore of moto's ~1,500 AWS-managed IAM policies (not 2 s a test);
    - skip moto's 1,200 ECS-optimised AMIs, which every new EC2 backend builds and the lab never uses;
    - share botocore's model loader and client classes between sessions (each test makes new sessions);
    - cache moto's per-request method lookup, and spare the garbage collector the millions of objects
      moto and botocore keep for the whole run.
    Once a test asks for it, it stays on until the session ends (it only ever makes moto faster).
    """
    import functools
    import gc
    import json

    import botocore.client
    import botocore.session
    import moto.core.responses
    import moto.ec2.models.amis
    import moto.iam.models
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    patch = pytest.MonkeyPatch()
    ssm_policy = {"AmazonSSMManagedInstanceCore": json.loads(aws_managed_policies_data)["AmazonSSMManagedInstanceCore"]}
    patch.setattr(moto.iam.models, "aws_managed_policies_data", json.dumps(ssm_policy))

    load_amis = moto.ec2.models.amis.load_resource
    patch.setattr(moto.ec2.models.amis, "load_resource", lambda r: [] if "ecs/optimized_amis" in r else load_amis(r))

    patch.setattr(botocore.session, "create_loader", functools.lru_cache(maxsize=None)(botocore.session.create_loader))
    make_class = botocore.client.ClientCreator._create_client_class
    classes: dict = {}

    def create_client_class(self, service_name, service_model):
        key = (service_name, service_model.api_version)
        if key not in classes:
            classes[key] = make_class(self, service_name, service_model)
        return classes[key]

    patch.setattr(botocore.client.ClientCreator, "_create_client_class", create_client_class)
    names = functools.lru_cache(maxsize=None)(moto.core.responses.method_names_from_class)
    patch.setattr(moto.core.responses, "method_names_from_class", names)  # moto inspects the class per request
    gc.freeze()  # moto and botocore load millions of long-lived objects; keep the collector off them
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 20)  # and collect less often: each test makes hundreds of thousands
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    patch.undo()


@contextlib.contextmanager
def strict_moto_backend():
    """A Backend over a fresh in-process moto with the strict layer (tests/strict.py) installed.

    The layer is `backend.strict` (its `refusals` list records what it refused); `backend.reset_account()`
    wipes all moto state.
    """
    from moto import mock_aws
    from strict import install_strict_layer

    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}) as mock:
        backend = InProcessBackend.make()
        backend.strict = install_strict_layer(backend)
        backend.reset_account = mock.reset
        yield backend


@pytest.fixture
def strict_backend(lab_home, fast_moto):
    """A fresh strict in-process moto account for one test (see strict_moto_backend)."""
    with strict_moto_backend() as backend:
        yield backend


@pytest.fixture(scope="module")
def region():
    """One plain in-process moto per test module, for the security tests that build labs by hand."""
    from test_security_lab import moto_region

    with moto_region() as backend:
        yield backend
