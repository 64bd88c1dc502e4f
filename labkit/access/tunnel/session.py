"""A port-forward through the lab's instance with Session Manager: the same calls on both backends.

    with tunnel("writer") as t:            # or: t = tunnel("writer").open() ... t.close()
        print(t.address)                  # 127.0.0.1:PORT, forwarded to the cluster endpoint

Opening one: find the instance and the far end, check the local port is free, wait until the instance is
Online in Session Manager (diagnosing why when it is not), `ssm.start_session` with a port-forwarding
document (retrying TargetNotConnected for a bounded time), then run the session plugin the way the AWS CLI
does, under a guard that ends plugin and session if this process dies. Closing: `terminate_session`, then
stop the plugin's process group. On AWS the plugin is AWS's session-manager-plugin; in the sandbox it is
labkit's stand-in, which forwards to the local MariaDB and refuses what the security groups block.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from labkit.access.tunnel.readiness import diagnose
from labkit.access.tunnel.target import TunnelTarget, resolve_target, validate_to
from labkit.aws.backend import Backend
from labkit.aws.errors import backoff, error_code, error_message
from labkit.aws.patience import TunnelTiming
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError

LOCALHOST = "127.0.0.1"
RESPONSE_ENV = "AWS_SSM_START_SESSION_RESPONSE"
GUARD = Path(__file__).with_name("guard.py")
PORT_OPENED = re.compile(r"Port (\d+) opened for sessionId (\S+?)\.?$")
REFUSED = re.compile(r"^Connection to (\S+) refused: (.*)$")
# What session-manager-plugin prints as a session ends on the service's side, e.g. at Session Manager's idle
# timeout (20 minutes by default; AWS Systems Manager User Guide, "Specify an idle session timeout value").
SESSION_ENDED = re.compile(r"Exiting session with sessionId:? (\S+?)\.?$")
IDLE_TIMEOUT_NOTE = "Session Manager ends a port forward after 20 idle minutes by default"

PLUGIN_INSTALL = """\
Session Manager needs AWS's session-manager-plugin on this machine (a version newer than 1.2.497.0):
  Debian/Ubuntu: curl -o /tmp/smp.deb https://s3.amazonaws.com/session-manager-downloads/plugin/latest/ubuntu_64bit/session-manager-plugin.deb && sudo dpkg -i /tmp/smp.deb
                 (arm64: .../plugin/latest/ubuntu_arm64/session-manager-plugin.deb)
  Amazon Linux/RHEL/Fedora: sudo yum install -y https://s3.amazonaws.com/session-manager-downloads/plugin/latest/linux_64bit/session-manager-plugin.rpm
                 (arm64: .../plugin/latest/linux_arm64/session-manager-plugin.rpm)
  macOS: brew install --cask session-manager-plugin
  Windows: run https://s3.amazonaws.com/session-manager-downloads/plugin/latest/windows/SessionManagerPluginSetup.exe
Then check with `session-manager-plugin --version`, and open the tunnel again."""


_open: set[Tunnel] = set()
_open_lock = threading.Lock()


def close_all() -> None:
    """Close every tunnel this process opened (also runs at interpreter exit)."""
    with _open_lock:
        tunnels = list(_open)
    for each in tunnels:
        each.close()


atexit.register(close_all)


def open_tunnels() -> list[Tunnel]:
    with _open_lock:
        return sorted(_open, key=lambda t: t.port or 0)


def find_open(to: str, config: Any, backend: Backend) -> Tunnel | None:
    """A tunnel already open to the same target of the same lab and backend (to reuse, not duplicate).

    One whose session has ended since (its plugin exited, e.g. at Session Manager's idle timeout) is reopened
    once, saying why, before it is returned: a dead tunnel is never handed out.
    """
    for candidate in open_tunnels():
        same_lab = (candidate.config.lab, candidate.config.learner) == (config.lab, config.learner)
        same_place = (candidate.backend.name, candidate.backend.region) == (backend.name, backend.region)
        if candidate.to == to and candidate.remote_port is None and same_lab and same_place:
            if moved(candidate, backend):
                continue  # closed, saying why: a new tunnel is opened against where the backend is now
            candidate.revive()
            return candidate
    return None


def moved(candidate: Tunnel, backend: Backend) -> bool:
    """Close `candidate` (saying why) when `backend` now answers at another endpoint than the one the tunnel
    was opened against, as a restarted sandbox does: its session and plugin belong to the old one."""
    then, now = candidate.backend.endpoint_url(), backend.endpoint_url()
    if then == now:
        return False
    candidate.close()
    from labkit.display import say  # pandas: only when there is something to say

    say(f"tunnel to {candidate.to}: the {backend.name} now answers at {now}, not {then} (it was restarted); reopening")
    return True


def local_port_free(port: int) -> bool:
    """Nothing holds 127.0.0.1:port (checked by binding, so no connection goes through a live tunnel).

    SO_REUSEADDR as the plugin's own listener: a TIME_WAIT left by a closed tunnel holds nothing.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if os.name != "nt":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


class Tunnel:
    """A local port forwarded through the lab's EC2 instance to `to` (see the module docstring)."""

    host = LOCALHOST

    def __init__(
        self,
        to: str = "writer",
        local_port: int | None = None,
        *,
        remote_port: int | None = None,
        config: Any | None = None,
        backend: Backend | None = None,
        timing: TunnelTiming | None = None,
    ) -> None:
        if local_port is not None and not (isinstance(local_port, int) and 1024 <= local_port <= 65535):
            raise ConfigError(
                f"local_port {local_port!r} is not a usable port",
                field="local_port",
                fix="pick a port from 1024 to 65535, or leave it out to get a free one",
            )
        validate_to(to, remote_port)
        self.to = to
        self.requested_port = local_port
        self.remote_port = remote_port
        self._config = config
        self._backend = backend
        self._timing = timing
        self.port: int | None = None
        self.target: TunnelTarget | None = None
        self.session_id: str | None = None
        self.opened_at: float | None = None
        self.refusals: list[str] = []
        self._refusal_times: list[float] = []
        self._refused = threading.Condition()
        self._output: collections.deque[str] = collections.deque(maxlen=50)
        self._errors: collections.deque[str] = collections.deque(maxlen=50)
        self._process: subprocess.Popen[bytes] | None = None
        self._readers: list[threading.Thread] = []
        self._ready = threading.Event()
        self._lock = threading.RLock()

    # ----- the learner's view -----
    @property
    def is_open(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def ended(self) -> bool:
        """True when the tunnel was opened and not closed, but its plugin has exited since (the session ended)."""
        return self._process is not None and self._process.poll() is not None

    def end_reason(self) -> str:
        """Why an ended tunnel ended, in one clause, from the plugin's last words."""
        for reader in self._readers:  # the plugin has exited: its pipes are at EOF or close to it
            reader.join(1.0)
        if any(SESSION_ENDED.search(line) for line in self._output):
            return f"the Session Manager session ended ({IDLE_TIMEOUT_NOTE})"
        code = self._process.poll() if self._process is not None else None
        how = f"was killed by signal {code - 128}" if code and code > 128 else f"exited with code {code}"
        last = next((line for line in reversed(self._errors) if line), "")
        return f"the session plugin {how}{': ' + last if last else ''}"

    def revive(self) -> bool:
        """Reopen an ended tunnel once, on the same local port when it is free, and say why in one line.

        Returns True when it reopened one, False when there was nothing to do (open, or closed on purpose).
        A failed reopen raises the reason it ended together with the reason it cannot reopen.
        """
        with self._lock:
            if not self.ended:
                return False
            reason, old_address = self.end_reason(), self.address
            self.close()
            requested = self.requested_port
            if self.port is not None and local_port_free(self.port):
                self.requested_port = self.port  # keep the address the learner (and any engine URL) knows
            try:
                self.open()
            except LabkitError as exc:
                raise LabkitError(
                    f"the tunnel to {self.to} at {old_address} is gone: {reason}; reopening it failed: {exc.message}",
                    field=exc.field or "tunnel",
                    fix=exc.fix,
                ) from None
            finally:
                self.requested_port = requested
            from labkit.display import say  # pandas: only when there is something to say

            say(f"tunnel to {self.to}: {reason}; reopened at {self.address}")
            return True

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else "(not open)"

    @property
    def config(self) -> Any:
        if self._config is None:
            self._config = LabConfig.load()
        return self._config

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = self.config.make_backend()
        return self._backend

    def __repr__(self) -> str:
        far = self.target.describe() if self.target else self.to
        state = "open" if self.is_open else "ended" if self.ended else "closed"
        return f"<Tunnel {far} at {self.address} ({state})>"

    def __enter__(self) -> Tunnel:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- open -----
    def open(self) -> Tunnel:
        """Open the tunnel (a no-op when it is open already); returns self."""
        with self._lock:
            if self.is_open:
                return self
            backend = self.backend
            timing = self._timing or backend.tunnel_timing
            target = resolve_target(self.to, self.config, backend, self.remote_port)
            port = self._free_local_port()
            plugin = backend.session_plugin()  # before any session starts: a bad plugin setting is refused first
            wait_until_online(backend, target.instance_id, timing)
            ssm = backend.client("ssm")
            response = _start_session(ssm, target, port, timing)
            self.target, self.session_id = target, response["SessionId"]
            if plugin is None:
                _terminate(ssm, self.session_id)
                raise LabkitError(
                    "session-manager-plugin is not installed", field="session-manager-plugin", fix=PLUGIN_INSTALL
                )
            self._spawn(plugin, backend, response, target, port)
            self._wait_for_port(ssm, timing)
            self.port, self.opened_at = port, time.time()
            with _open_lock:
                _open.add(self)
            return self

    def _free_local_port(self) -> int:
        """The requested port after checking nothing holds it (the plugin would hang), else a free one."""
        if self.requested_port is None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((LOCALHOST, 0))
                return int(probe.getsockname()[1])
        if not local_port_free(self.requested_port):
            raise ConfigError(
                f"local port {self.requested_port} is already in use on this machine",
                field="local_port",
                fix="choose another port, or leave local_port out to get a free one",
            )
        return self.requested_port

    def _spawn(
        self, plugin: list[str], backend: Backend, response: dict[str, Any], target: TunnelTarget, port: int
    ) -> None:
        """Run the plugin as the AWS CLI does, the response JSON passed in the environment (not in `ps`)."""
        ssm = backend.client("ssm")
        request = {"Target": target.instance_id, "DocumentName": target.document, "Parameters": target.parameters(port)}
        session = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        command = [
            *plugin, RESPONSE_ENV, backend.region, "StartSession", os.environ.get("AWS_PROFILE", ""),
            json.dumps(request), ssm.meta.endpoint_url,
        ]  # fmt: skip
        guard = [
            sys.executable, str(GUARD), "--owner", str(os.getpid()), "--backend", backend.name,
            "--region", backend.region, "--session-id", session["SessionId"],
            "--endpoint-url", backend.endpoint_url() or "", "--", *command,
        ]  # fmt: skip
        env = {**os.environ, RESPONSE_ENV: json.dumps(session)}
        self._ready.clear()
        self.refusals, self._refusal_times = [], []
        self._process = subprocess.Popen(
            guard, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            start_new_session=True,
        )  # fmt: skip
        self._readers = [
            threading.Thread(target=self._read, args=(self._process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self._process.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if not is_stdout:
                self._errors.append(line)
                continue
            self._output.append(line)
            if PORT_OPENED.search(line):
                self._ready.set()
            refused = REFUSED.match(line)
            if refused:
                with self._refused:
                    self.refusals.append(refused.group(2))
                    self._refusal_times.append(time.monotonic())
                    self._refused.notify_all()

    def _wait_for_port(self, ssm: Any, timing: TunnelTiming) -> None:
        deadline = time.monotonic() + timing.open_timeout
        while not self._ready.wait(0.02):
            process = self._process
            exited = process is None or process.poll() is not None
            if exited or time.monotonic() > deadline:
                if exited:  # let the readers take in the plugin's last words before the pipes close
                    for reader in self._readers:
                        reader.join(1.0)
                self._stop_process()
                _terminate(ssm, self.session_id)
                detail = " | ".join(line for line in self._errors if line) or "no output"
                why = "exited" if exited else f"did not open the port within {timing.open_timeout:.0f} s"
                raise LabkitError(
                    f"the session plugin {why}: {detail}",
                    field="session-manager-plugin",
                    fix="update session-manager-plugin to a version newer than 1.2.497.0, and check the local port is free",
                )

    def recent_refusal(self, within: float = 5.0, wait: float = 1.0) -> str | None:
        """A connection the far side refused in the last `within` s, waiting up to `wait` s for one to be reported
        (the plugin reports a refusal as it closes the connection, so the report can trail the failure)."""

        def recent() -> bool:
            return bool(self._refusal_times) and self._refusal_times[-1] >= time.monotonic() - within

        with self._refused:
            return self.refusals[-1] if self._refused.wait_for(recent, timeout=wait) else None

    # ----- close -----
    def close(self) -> None:
        """End the session and the plugin; safe to call twice."""
        with self._lock:
            if self._process is None:
                return
            if self.session_id:
                _terminate(self.backend.client("ssm"), self.session_id)
            self._stop_process()
            with _open_lock:
                _open.discard(self)

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for signum, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, signum)
            except (ProcessLookupError, PermissionError):
                break
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def tunnel(
    to: str = "writer",
    local_port: int | None = None,
    *,
    remote_port: int | None = None,
    config: Any | None = None,
    backend: Backend | None = None,
) -> Tunnel:
    """A tunnel to 'writer', 'reader', a DB instance, an endpoint, or an instance id (with remote_port).

    Use it as a context manager, or call `.open()` and later `.close()`; it is closed at exit either way.
    """
    return Tunnel(to, local_port, remote_port=remote_port, config=config, backend=backend)


def wait_until_online(backend: Backend, instance_id: str, timing: TunnelTiming) -> None:
    """Return when Session Manager reports the instance Online; raise with the diagnosis when it cannot be."""
    ssm = backend.client("ssm")
    pauses = backoff(timing.first_delay, timing.max_delay, time.monotonic() + timing.online_timeout)
    while True:
        try:
            found = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
        except ClientError as exc:
            raise _api_error("describe_instance_information", exc) from None
        if any(i.get("PingStatus") == "Online" for i in found.get("InstanceInformationList", [])):
            return
        readiness = diagnose(backend, instance_id)
        if not readiness.ready:
            raise readiness.error()
        if next(pauses, None) is None:  # out of time
            raise LabkitError(
                f"{instance_id} passes every check but its SSM agent has not come Online "
                f"within {timing.online_timeout:.0f} s",
                field="instance",
                fix="a new instance takes a minute or two; if it stays offline, check the AMI runs the SSM agent "
                "(Amazon Linux does) and reboot it",
            )


def _start_session(ssm: Any, target: TunnelTarget, port: int, timing: TunnelTiming) -> dict[str, Any]:
    """start_session, retrying TargetNotConnected (an agent that has only just registered) for a bounded time."""
    pauses = backoff(timing.first_delay, timing.max_delay, time.monotonic() + timing.connect_timeout)
    while True:
        try:
            return ssm.start_session(
                Target=target.instance_id,
                DocumentName=target.document,
                Parameters=target.parameters(port),
                Reason=f"labkit tunnel to {target.name}"[:256],
            )
        except ClientError as exc:
            if error_code(exc) != "TargetNotConnected" or next(pauses, None) is None:
                raise _api_error("start_session", exc) from None


def _terminate(ssm: Any, session_id: str | None) -> None:
    if not session_id:
        return
    try:
        ssm.terminate_session(SessionId=session_id)
    except Exception:  # closing must not fail; an unterminated session ends at its idle timeout
        pass


def _api_error(operation: str, exc: ClientError) -> LabkitError:
    code = error_code(exc)
    fixes = {
        "TargetNotConnected": "the instance's SSM agent is not connected; wait a minute after it starts, then retry",
        "AccessDeniedException": "your identity needs ssm:StartSession, ssm:TerminateSession and "
        "ssm:DescribeInstanceInformation (labkit-learner-read)",
        "InvalidDocument": "use the AWS-StartPortForwardingSessionToRemoteHost document",
    }
    return LabkitError(
        f"ssm.{operation} failed: {code}: {error_message(exc)}".rstrip(": "),
        field="ssm",
        fix=fixes.get(code, "check the instance and your permissions, then retry"),
    )
