"""The sandbox as a Backend (runs in the learner's process): calls go to the local moto server, database
endpoints resolve to local MariaDB ports, and the session plugin is labkit's stand-in.

Registered under the name "sandbox" when this module is imported (pyproject's `labkit.backends` entry point
names it), so the AWS layer below never imports the sandbox.
"""

from __future__ import annotations

import sys

import boto3
from botocore.config import Config

from labkit.aws.backend import FAKE_CREDENTIALS, Backend, is_loopback_url, register
from labkit.aws.patience import AppTiming, Timing, TunnelTiming
from labkit.errors import BackendError
from labkit.sandbox import state
from labkit.sandbox.vpc import dns


@register
class SandboxBackend(Backend):
    """The embedded sandbox: a local moto server plus MariaDB processes; fake credentials, loopback only."""

    name = "sandbox"
    reaches_private_endpoints = True  # the databases are local processes
    timing = Timing(poll_seconds=0.2, retry_attempts=6, retry_first_delay=0.05, retry_max_delay=0.5)
    tunnel_timing = TunnelTiming(online_timeout=5, connect_timeout=5, open_timeout=30, first_delay=0.1, max_delay=0.5)
    app_timing = AppTiming(start_timeout=15.0, poll_seconds=0.1)

    def __init__(self, region: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(region)
        self._endpoint = endpoint

    def endpoint_url(self) -> str:
        if self._endpoint is None:
            self._endpoint = state.require_running().endpoint_url
        if not is_loopback_url(self._endpoint):
            raise BackendError(
                f"the sandbox endpoint {self._endpoint} is not on loopback",
                field="endpoint",
                fix="the sandbox only ever listens on 127.0.0.1; restart it with `labkit sandbox up`",
            )
        return self._endpoint

    def session(self) -> boto3.Session:
        return boto3.Session(region_name=self.region, **FAKE_CREDENTIALS)

    def client_config(self) -> Config:
        # moto answers at once; a 500 is an unimplemented call, so retrying it only wastes time.
        return Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=60)

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        return dns.resolve(host)

    def session_plugin(self) -> list[str]:
        return [sys.executable, "-m", "labkit.sandbox.procs.session_plugin"]

    def banner(self) -> str:
        return f"backend=sandbox account={self.account_id()} region={self.region} endpoint={self.endpoint_url()}"
