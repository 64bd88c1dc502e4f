"""The two backends behind one interface: the embedded sandbox (default) and real AWS (explicit opt-in).

Every boto3 client in labkit comes from `Backend.client`; no other module builds its own. The backend
decides only where the calls go (and, in the sandbox, how a database endpoint maps to a local port).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import threading
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from labkit.errors import BackendError

DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
BACKENDS = ("sandbox", "aws")


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is a loopback address or `localhost`."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Backend(ABC):
    """Where AWS calls go and how database endpoints are reached."""

    name: str
    reaches_private_endpoints = False  # can this machine connect to a DB endpoint without a tunnel?

    def __init__(self, region: str | None = None) -> None:
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @abstractmethod
    def session(self) -> boto3.Session:
        """A boto3 session for this backend."""

    @abstractmethod
    def endpoint_url(self) -> str | None:
        """The AWS API endpoint override (None means AWS's own endpoints)."""

    @abstractmethod
    def resolve(self, host: str, port: int) -> tuple[str, int]:
        """Where a TCP connection to a database endpoint `host:port` actually goes."""

    @abstractmethod
    def session_plugin(self) -> list[str] | None:
        """The command that runs the local end of an SSM session (None when it is not installed)."""

    def client_config(self) -> Config:
        return Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)

    def client(self, service: str) -> Any:
        """A cached boto3 client for `service` (thread-safe to create, clients are shared)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session().client(
                    service, endpoint_url=self.endpoint_url(), config=self.client_config()
                )
            return self._clients[service]

    def account_id(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]

    def banner(self) -> str:
        """One line that says which account and region changes will land in."""
        return f"backend={self.name} account={self.account_id()} region={self.region}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} region={self.region} endpoint={self.endpoint_url() or 'aws'}>"


class SandboxBackend(Backend):
    """The embedded sandbox: a local moto server plus MariaDB processes; fake credentials, loopback only."""

    name = "sandbox"
    reaches_private_endpoints = True  # the databases are local processes

    def __init__(self, region: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(region)
        self._endpoint = endpoint

    def endpoint_url(self) -> str:
        if self._endpoint is None:
            from labkit.sandbox import state

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
        from labkit.sandbox.vpc.dns import resolve

        return resolve(host)

    def session_plugin(self) -> list[str]:
        return [sys.executable, "-m", "labkit.sandbox.procs.session_plugin"]

    def banner(self) -> str:
        return f"backend=sandbox account={self.account_id()} region={self.region} endpoint={self.endpoint_url()}"


class AwsBackend(Backend):
    """Real AWS through the standard boto3 credential chain. Never the default."""

    name = "aws"

    def session(self) -> boto3.Session:
        return boto3.Session(region_name=self.region)

    def endpoint_url(self) -> None:
        return None

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        return host, port

    def session_plugin(self) -> list[str] | None:
        found = shutil.which("session-manager-plugin")
        return [found] if found else None


def get_backend(name: str | None = None, region: str | None = None) -> Backend:
    """The backend named by `name`, else LABKIT_BACKEND, else the sandbox."""
    chosen = (name or os.environ.get("LABKIT_BACKEND") or "sandbox").strip().lower()
    if chosen == "sandbox":
        return SandboxBackend(region)
    if chosen == "aws":
        return AwsBackend(region)
    raise BackendError(
        f"unknown backend {chosen!r}",
        field="backend",
        fix="use 'sandbox' (the default, local and free) or 'aws' (your real account, costs money)",
    )
