"""The backends behind one interface, and their registry: real AWS here, the sandbox in labkit.sandbox.

Every boto3 client in labkit comes from `Backend.client`; no other module builds its own. A backend decides
where the calls go, how a database endpoint is reached, and how patient callers must be; code elsewhere
reads those attributes and never asks which backend it has. Backends register by name (`@register`); the
sandbox's registers itself through the `labkit.backends` entry point, so this layer never imports it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import ipaddress
import os
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from labkit.aws.patience import AppTiming, Timing, TunnelTiming
from labkit.aws.regions import check_region
from labkit.aws.servicemodels import new_session
from labkit.errors import BackendError, ConfigError, LabkitError

DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
BACKENDS = ("sandbox", "aws")  # the choices a learner has; each is registered below or by its own package
ENTRY_POINT_GROUP = "labkit.backends"
BACKEND_ENV = "LABKIT_BACKEND"  # chooses the backend unless a flag does; wins over lab.toml (LabConfig.load)
PLUGIN = "session-manager-plugin"
# labkit passes the start-session response in the AWS_SSM_START_SESSION_RESPONSE environment variable, which only
# plugin versions strictly newer than 1.2.497.0 read (awscli's customizations/sessionmanager.py compares with >).
PLUGIN_NEWER_THAN = (1, 2, 497, 0)
PLUGIN_UPDATE = (
    "install or update AWS's session-manager-plugin: https://docs.aws.amazon.com/systems-manager/latest/userguide/"
    "session-manager-working-with-install-plugin.html"
)


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is a loopback address or `localhost`."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plugin_version_check(printed: str | None) -> tuple[bool, str]:
    """(ok, detail) for what `session-manager-plugin --version` printed (None: not installed)."""
    if printed is None:
        return False, f"not installed: {PLUGIN_UPDATE}"
    found = printed.strip().split()[-1] if printed.strip() else ""
    try:
        version = tuple(int(part) for part in found.split("."))
    except ValueError:
        return False, f"cannot read its version from {printed!r}: {PLUGIN_UPDATE}"
    newer_than = ".".join(map(str, PLUGIN_NEWER_THAN))
    if version <= PLUGIN_NEWER_THAN:
        return False, f"{found} is too old: labkit needs a version newer than {newer_than}; {PLUGIN_UPDATE}"
    return True, found


class Backend(ABC):
    """Where AWS calls go and how database endpoints are reached."""

    name: str
    reaches_private_endpoints: bool = False  # can this machine connect to a DB endpoint without a tunnel?
    prices_from_api: bool = False  # ask the AWS Pricing API before the bundled price table
    free: bool = False  # True when nothing it creates is billed (prices then show what AWS would charge)
    preflight_before_apply: bool = False  # apply runs `labkit preflight` first and stops on a failed check
    stand_in_plugin: bool = False  # session_plugin() is labkit's stand-in, not AWS's session-manager-plugin
    timing: Timing  # provisioning polls and retries
    tunnel_timing: TunnelTiming  # opening a Session Manager tunnel
    app_timing: AppTiming  # the web app answering through its tunnel

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

    def trust_store(self) -> str:
        """The CA bundle that signs the database servers' certificates: AWS's RDS bundle (fetched once into the
        home, labkit.aws.truststore); the sandbox's is its home's own CA."""
        from labkit.aws.regions import partition_of  # start-up time: botocore's data, read when a connection asks
        from labkit.aws.truststore import rds_ca_bundle  # only a connection that verifies a server reads it

        return str(rds_ca_bundle(partition_of(self.region)))

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

    def service_checks(self) -> list[tuple[str, bool, str]]:
        """(check, ok, detail) rows for a service this backend runs on this machine, for the environment report,
        which asks the AWS API only when they all pass. AWS runs its own service: none."""
        return []

    def program_checks(self, version_of: Callable[..., str | None]) -> list[tuple[str, bool, str]]:
        """(check, ok, detail) rows for programs this backend needs on this machine; `version_of(program, *args)`
        is the first line the program prints, or None when it is not installed. AWS needs none."""
        return []

    def restart_app(self, instance_id: str, changes: dict[str, str]) -> None:
        """Set `changes` (LABKIT_APP_* settings) in the web app's environment file on the instance and restart
        the app. On EC2, SSM Run Command runs labkit.app.userdata's settings script, which edits
        /etc/labkit-app.env and restarts the systemd unit, as an operator would."""
        from labkit.app.userdata import settings_script  # text only; the instance runs it
        from labkit.aws.runcommand import run_shell  # start-up time: botocore's waiters

        reply = run_shell(
            self, instance_id, settings_script(changes), comment="labkit: change the web app's settings",
            timeout=120, delay=self.tunnel_timing.first_delay, what="changing the web app's settings",
        )  # fmt: skip
        if reply["Status"] != "Success":
            error = (reply.get("StandardErrorContent") or "").strip().splitlines()[-1:]
            raise LabkitError(
                f"changing the web app's settings on {instance_id} ended {reply['Status']}: {' '.join(error)}",
                field="instance",
                fix="check the app installed at first boot: /var/log/labkit-app-install.log on the instance",
            )

    def crash_db_instance(self, instance: str) -> str:
        """Make a DB instance's database fail as a crash would (the failover lab's writer crash); returns how.
        On AWS: RebootDBInstance with ForceFailover, the documented way to test a failover of a writer."""
        self.client("rds").reboot_db_instance(DBInstanceIdentifier=instance, ForceFailover=True)
        return "reboot_db_instance(ForceFailover=True)"

    @contextlib.contextmanager
    def private_run(self) -> Iterator[str]:
        """Ready this backend for a headless workbook run in a LABKIT home of the run's own (LABKIT_HOME is set)
        and yield the line that says where the run's calls go. AWS needs nothing started: its banner names the
        account and region before anything runs."""
        yield self.banner()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} region={self.region} endpoint={self.endpoint_url() or 'aws'}>"


_registry: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make `cls` the backend called `cls.name`."""
    _registry[cls.name] = cls
    return cls


def backend_class(name: str) -> type[Backend]:
    """The registered backend called `name`, loading its package through the entry point if need be."""
    if name not in _registry:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
            entry.load()  # the module registers its class as it is imported
    if name not in _registry:
        raise BackendError(
            f"unknown backend {name!r}",
            field="backend",
            fix="use 'sandbox' (the default, local and free) or 'aws' (your real account, costs money)",
        )
    return _registry[name]


@register
class AwsBackend(Backend):
    """Real AWS through the standard boto3 credential chain. Never the default."""

    name = "aws"
    prices_from_api = True
    timing = Timing(poll_seconds=None, retry_attempts=10, retry_first_delay=2.0, retry_max_delay=30.0)
    tunnel_timing = TunnelTiming(
        online_timeout=300, connect_timeout=120, open_timeout=30, first_delay=2.0, max_delay=15.0
    )
    app_timing = AppTiming(start_timeout=600.0, poll_seconds=1.0)

    preflight_before_apply = True  # a real account: prove the lab will work before anything is created

    def session(self) -> boto3.Session:
        return new_session(region_name=self.region)

    def endpoint_url(self) -> None:
        return None

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        return host, port

    def session_plugin(self) -> list[str] | None:
        found = shutil.which(PLUGIN)
        return [found] if found else None

    def service_checks(self) -> list[tuple[str, bool, str]]:
        """Credentials the standard chain finds, and a region with EC2 and RDS; the AWS API is asked after."""
        credentials = self.session().get_credentials()
        rows = [
            (
                "AWS credentials",
                credentials is not None,
                f"found ({credentials.method})"
                if credentials is not None
                else "none found: run `aws configure` (or `aws sso login --profile NAME` and set AWS_PROFILE)",
            )
        ]
        try:
            rows.append(("AWS region", True, check_region(self.region, field="region")))
        except ConfigError as exc:
            rows.append(("AWS region", False, f"{exc.message}; {exc.fix}"))
        return rows

    def program_checks(self, version_of: Callable[..., str | None]) -> list[tuple[str, bool, str]]:
        """AWS's session-manager-plugin, new enough for how labkit runs it (every tunnel needs it)."""
        return [(PLUGIN, *plugin_version_check(version_of(PLUGIN, "--version")))]


def backend_from_env() -> str | None:
    """The backend LABKIT_BACKEND names (None when it is unset or empty); any other value is refused."""
    raw = os.environ.get(BACKEND_ENV, "").strip()
    if not raw:
        return None
    if raw.lower() not in BACKENDS:
        raise ConfigError(
            f"{raw!r} is not a backend",
            field=BACKEND_ENV,
            fix=f"set {BACKEND_ENV}=sandbox (local and free) or {BACKEND_ENV}=aws (your real account, costs money), "
            "or unset it (then lab.toml's backend applies, else the sandbox); when set, it wins over lab.toml",
        )
    return raw.lower()


def get_backend(name: str | None = None, region: str | None = None) -> Backend:
    """The backend named by `name`, else LABKIT_BACKEND, else the sandbox."""
    chosen = (name or backend_from_env() or "sandbox").strip().lower()
    return backend_class(chosen)(region)
