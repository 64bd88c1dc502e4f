"""In-process moto backends for the unit tests: plain, strict (support/strict.py), and moto's speed-ups."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


class InProcessBackend:
    """Factory for a labkit Backend served by moto in-process (mock_aws); see the `moto_backend` fixture."""

    @staticmethod
    def make(region: str = "us-east-1", credentials: dict[str, str] | None = None):
        """`credentials` (aws_access_key_id, aws_secret_access_key): sign as that user, e.g. an IAM user under
        moto's IAM enforcement; by default the fake credentials of the account's admin."""
        import boto3

        from labkit.aws.backend import FAKE_CREDENTIALS, Backend
        from labkit.sandbox.backend import SandboxBackend

        class _InProcess(Backend):
            name = "sandbox"
            timing, tunnel_timing, app_timing = (
                SandboxBackend.timing,
                SandboxBackend.tunnel_timing,
                SandboxBackend.app_timing,
            )

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


def moto_speedups() -> Iterator[None]:
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
    from support.strict import install_strict_layer

    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}) as mock:
        backend = InProcessBackend.make()
        backend.strict = install_strict_layer(backend)
        backend.reset_account = mock.reset
        yield backend
