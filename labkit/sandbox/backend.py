"""The sandbox as a Backend: calls go to the local moto server, database endpoints resolve to the local ports
of the sandbox's database servers, and the session plugin is labkit's stand-in.

Runs in the client (the learner's kernel, the CLI) and in the processes that call the sandbox's API from outside
the daemon: the session plugin and the app hosts. The daemon reads its own state in process (daemon/inprocess.py).

Registered under the name "sandbox" when this module is imported (pyproject's `labkit.backends` entry point
names it), so the AWS layer below never imports the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

import boto3
from botocore.config import Config

from labkit.aws.backend import Backend, is_loopback_url, register
from labkit.aws.patience import AppTiming, Timing, TunnelTiming
from labkit.aws.servicemodels import new_session
from labkit.engines import ENGINES
from labkit.errors import BackendError, ConfigError, LabkitError
from labkit.home import labkit_home
from labkit.sandbox import state
from labkit.sandbox.procs.settings import BadSetting, idle_timeout
from labkit.sandbox.signing import home_credentials
from labkit.sandbox.vpc import dns


@register
class SandboxBackend(Backend):
    """The embedded sandbox: a local moto server plus database server processes; loopback only, and every call
    signed with the LABKIT home's own key pair (signing.py), the only one its server answers."""

    name = "sandbox"
    reaches_private_endpoints = True  # the databases are local processes
    free = True
    stand_in_plugin = True  # procs/session_plugin.py: it obeys the security groups, it is not AWS's plugin
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
        return new_session(region_name=self.region, **home_credentials(labkit_home()).for_boto3())

    def client_config(self) -> Config:
        # moto answers at once; a 500 is an unimplemented call, so retrying it only wastes time.
        return Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=60)

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        return dns.resolve(host)

    def trust_store(self) -> str:
        """The home's own CA, which signs the sandbox's database servers' certificates (labkit.sandbox.tls)."""
        from labkit.sandbox.tls import ca_file  # cryptography: only a connection that verifies a server loads it

        return str(ca_file(labkit_home() / "data"))

    def session_plugin(self) -> list[str]:
        """The stand-in plugin; its settings (LABKIT_SSM_IDLE_TIMEOUT) are checked here, before a session starts."""
        try:
            idle_timeout()
        except BadSetting as exc:
            raise ConfigError(
                str(exc), field="LABKIT_SSM_IDLE_TIMEOUT", fix="set it to a number of seconds above 0, or unset it"
            ) from None
        return [sys.executable, "-m", "labkit.sandbox.procs.session_plugin"]

    def restart_app(self, instance_id: str, changes: dict[str, str]) -> None:
        """The settings script runs on the app's own environment file here; SIGHUP restarts its app host."""
        from labkit.sandbox.appsettings import restart_app  # start-up time of the session plugin and app hosts

        restart_app(instance_id, changes)

    def crash_db_instance(self, instance: str) -> str:
        """Kill the instance's database server process (SIGKILL): the daemon notices, restarts it on its data and,
        for a writer, fails over to a reader, as Aurora does after a crash."""
        running = state.require_running()
        pid = int((running.instances.get(instance) or {}).get("pid") or 0)
        if not pid:
            raise LabkitError(f"{instance} has no running database in the sandbox", field="instance",
                              fix="wait until the instance is available, then try again")  # fmt: skip
        os.kill(pid, signal.SIGKILL)
        return f"SIGKILL to the database server of {instance} (pid {pid})"

    def banner(self) -> str:
        return f"backend=sandbox account={self.account_id()} region={self.region} endpoint={self.endpoint_url()}"

    # The environment report and the headless workbook run (labkit.workbook) ask these; each imports the
    # client's control code when called, because the session plugin and the app hosts import this module too.
    def service_checks(self) -> list[tuple[str, bool, str]]:
        """Is the sandbox running (its AWS API is only asked when it is)?"""
        from labkit.sandbox.control import status  # start-up time of the session plugin and app hosts

        info = status()
        if not info["running"]:
            return [("sandbox", False, "not running: run `labkit.sandbox.up()`")]
        return [("sandbox", True, f"running, AWS API at {info['endpoint_url']}")]

    def program_checks(self, version_of: Callable[..., str | None]) -> list[tuple[str, bool, str]]:
        """For each engine (labkit.engines): the database server the sandbox runs, and the client and the C
        benchmark the workbook uses."""
        from labkit.sandbox.engines.base import engine_class  # start-up time, as above

        rows = []
        for engine in ENGINES.values():
            setup, client = engine.setup, engine.client
            try:
                rows.append((f"{setup.server_engine} server", True, engine_class(engine.name)().version()))
            except LabkitError as exc:
                rows.append((f"{setup.server_engine} server", False, exc.fix or exc.message))
            for check, program in ((f"{client.program} client", client.program), (setup.reference_benchmark,) * 2):
                version = version_of(program, "--version")
                rows.append((check, version is not None, version or "not found: make lab installs it"))
        return rows

    @contextlib.contextmanager
    def private_run(self) -> Iterator[str]:
        """A sandbox of the run's own in its LABKIT home, its API exported to the kernels (and no AWS_ settings
        of this machine leaking into them); stopped when the run ends."""
        from labkit.sandbox import control  # start-up time, as above

        for name in [n for n in os.environ if n.startswith("AWS_")]:
            del os.environ[name]
        running = control.up(quiet=True)
        try:
            os.environ.update(control.env_exports())
            yield f"backend=sandbox (its own, at {running.endpoint_url})"
        finally:
            control.down(quiet=True)
