"""The control plane read inside the daemon: boto3 clients that moto's backends in this process answer directly.

Runs in the daemon, inside the moto server's request threads (the SSM emulation asks it whether an instance's
agent would be Online). The daemon's moto server and these clients share the same in-memory backends
(`moto.ec2.models.ec2_backends`, `moto.iam.models.iam_backends`, ...), so a request handler reads the state it
serves without calling its own HTTP API from inside a request. The calls still go through moto's response layer,
as `mock_aws` does in a test, so the readiness diagnosis and the reachability engine keep the one code path they
have on AWS, and no part of the sandbox depends on the private attributes of moto's models.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from moto.core.botocore_stubber import BotocoreStubber

from labkit.errors import SandboxError
from labkit.sandbox.backend import SandboxBackend


class AnswerInProcess:
    """A botocore `before-send` handler: moto's backends answer the request; nothing goes on the wire."""

    def __init__(self) -> None:
        self._moto = BotocoreStubber()  # our own instance: enabling it patches no other client in the process
        self._moto.enabled = True

    def __call__(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        response = self._moto(request=request, **kwargs)
        if response is None:  # botocore would send it to AWS itself: refuse instead
            raise SandboxError(
                f"moto has no in-process handler for {request.method} {request.url}",
                field="endpoint",
                fix="this is a labkit bug: the sandbox daemon must answer every call in process",
            )
        return response


_answer = AnswerInProcess()


class InProcessBackend(SandboxBackend):
    """The sandbox backend as the daemon itself sees it: same account and region, no HTTP, no endpoint."""

    def __init__(self, region: str | None = None) -> None:
        super().__init__(region)

    def endpoint_url(self) -> None:  # type: ignore[override]
        return None  # AWS's own endpoint names, which moto matches; the handler answers before anything is sent

    def session(self) -> boto3.Session:
        session = super().session()
        session.events.register("before-send", _answer)
        return session

    def client_config(self) -> Config:
        # AWS_ENDPOINT_URL in the environment must not turn these into HTTP calls to some server.
        return super().client_config().merge(Config(ignore_configured_endpoint_urls=True))

    def banner(self) -> str:
        return f"backend=sandbox (in process) region={self.region}"
