"""Run the web app of each running lab instance, as its user data would on EC2.

Runs in the daemon, on its main loop; each app runs in an app host process (procs/apphost.py) it starts.
For every EC2 instance in the control plane whose user data installs the lab's app, the supervisor extracts
the app source and settings from that user data and runs the source as a local process while the instance
is running (stopped with it, started again with it, removed when it is terminated). The process listens on
a free local port that stands for the instance's port 8080; its database connections go through the
sandbox's network (vpc/network.py), so the security groups decide what it reaches.

A process that dies is restarted as systemd restarts the unit the user data installs (Restart=always,
RestartSec=5): after the unit's delay, on the same port when it is free, at most StartLimitBurst starts within
StartLimitIntervalSec (systemd's defaults: 5 in 10 s), after which the app stays failed as the unit would.
The state file's apps entry counts the restarts and says how the last process ended.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.app.userdata import settings_from, source_from
from labkit.sandbox.processes import die_with_parent, free_port, port_in_use, terminate
from labkit.sandbox.signing import home_credentials

log = logging.getLogger("labkit.sandbox.daemon.apps")
READY_TIMEOUT = 15.0
# Exits systemd counts as clean besides code 0 (systemd.service, SuccessExitStatus=): they do not restart
# a unit with Restart=on-failure.
CLEAN_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)
_UNIT_SETTING = re.compile(
    r"^\s*(Restart|RestartSec|StartLimitIntervalSec|StartLimitBurst)[ \t]*=[ \t]*(.*?)[ \t]*$", re.M
)
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


@dataclass(frozen=True)
class RestartPolicy:
    """The restart settings of the unit in the user data, with systemd's defaults for what it leaves out
    (systemd.service: Restart=no, RestartSec=100ms; systemd.unit: StartLimitIntervalSec=10s, StartLimitBurst=5)."""

    restart: str = "no"
    delay: float = 0.1
    interval: float = 10.0
    burst: int = 5

    @classmethod
    def from_user_data(cls, user_data: str) -> RestartPolicy:
        found = dict(_UNIT_SETTING.findall(user_data))
        default = cls()

        def setting(name: str, parse: Callable[[str], Any], fallback: Any) -> Any:
            if name not in found:
                return fallback
            try:
                return parse(found[name])
            except ValueError:  # systemd ignores a setting it cannot parse, with a warning
                log.warning("the unit's %s=%s is not valid: using systemd's default", name, found[name])
                return fallback

        return cls(
            restart=found.get("Restart", default.restart),
            delay=setting("RestartSec", _time_span, default.delay),
            interval=setting("StartLimitIntervalSec", _time_span, default.interval),
            burst=setting("StartLimitBurst", int, default.burst),
        )

    def restarts_after(self, returncode: int) -> bool:
        """Whether an exit with this Popen returncode (negative: the signal) restarts the unit."""
        clean = returncode == 0 or -returncode in CLEAN_SIGNALS
        return {
            "always": True,
            "on-success": clean,
            "on-failure": not clean,
            "on-abnormal": returncode < 0 and not clean,
            "on-abort": returncode < 0 and not clean,
        }.get(self.restart, False)

    def start_limit_hit(self, starts: deque[float], now: float) -> bool:
        """True when one more start now would exceed StartLimitBurst within StartLimitIntervalSec (0: no limit)."""
        while starts and now - starts[0] >= self.interval:
            starts.popleft()
        return self.interval > 0 and len(starts) >= self.burst


def _time_span(text: str) -> float:
    """A systemd time span ("5", "100ms", "1min 30s") in seconds; a bare number is seconds."""
    spec = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", spec)
    if not re.fullmatch(r"(\d+(\.\d+)?\s*[a-z]*\s*)+", spec) or any((u or "s") not in _TIME_UNITS for _, u in parts):
        raise ValueError(f"{text!r} is not a systemd time span")
    return sum(float(number) * _TIME_UNITS[unit or "s"] for number, unit in parts)


@dataclass
class AppProcess:
    instance_id: str
    region: str
    instance_port: int
    port: int
    process: subprocess.Popen[bytes]
    log_file: Path
    command: list[str]
    env: dict[str, str]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    status: str = "starting"  # starting | running | restarting (waiting RestartSec) | failed
    error: str | None = None
    restarts: int = 0
    last_exit: str | None = None
    restart_at: float | None = None
    starts: deque[float] = field(default_factory=deque)  # monotonic start times, for the start limit


class AppSupervisor:
    """Owns the app processes; `reconcile()` is safe to call as often as you like."""

    def __init__(
        self,
        home: Path,
        endpoint: str,
        ec2_clients: Callable[[], list[Any]],
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        """`on_exit` (e.g. the main loop's wake event's `set`) is called from a watcher thread as an app process
        exits, so a loop that sleeps long between passes notices it at once."""
        self.home = home
        self.endpoint = endpoint
        self.ec2_clients = ec2_clients
        self.on_exit = on_exit
        self.apps: dict[str, AppProcess] = {}
        self.user_data: dict[str, str] = {}

    def observe(self) -> dict[str, tuple[Any, str]]:
        """Running instances whose user data installs the app: id -> (its EC2 client, region)."""
        running: dict[str, tuple[Any, str]] = {}
        for ec2 in self.ec2_clients():
            filters = [{"Name": "instance-state-name", "Values": ["running"]}]
            for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        running[instance["InstanceId"]] = (ec2, ec2.meta.region_name)
        return running

    def _forget_terminated(self) -> bool:
        """Remove the app folders (source, settings, log) of instances that no longer exist (terminated):
        an app keeps no data of its own, its orders are in the database."""
        folders = [f for f in (self.home / "apps").glob("i-*") if f.is_dir() and f.name not in self.apps]
        if not folders:
            return False
        alive = {"pending", "running", "stopping", "stopped", "shutting-down"}
        existing = {
            instance["InstanceId"]
            for ec2 in self.ec2_clients()
            for page in ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-state-name", "Values": sorted(alive)}]
            )
            for reservation in page["Reservations"]
            for instance in reservation["Instances"]
        }
        gone = [f for f in folders if f.name not in existing]
        for folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
        return bool(gone)

    def _user_data(self, ec2: Any, instance_id: str) -> str:
        if instance_id not in self.user_data:  # user data can change only while an instance is stopped
            reply = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
            encoded = (reply.get("UserData") or {}).get("Value") or ""
            self.user_data[instance_id] = base64.b64decode(encoded).decode("utf-8", "replace") if encoded else ""
        return self.user_data[instance_id]

    def reconcile(self) -> bool:
        """One pass; returns True when anything changed."""
        running = self.observe()
        changed = False
        for instance_id in [i for i in self.apps if i not in running]:
            log.info("instance %s is no longer running: stopping its app", instance_id)
            self._stop(self.apps.pop(instance_id))
            changed = True
        for instance_id in [i for i in self.user_data if i not in running]:
            self.user_data.pop(instance_id)  # a stopped instance may come back with new user data
        changed |= self._forget_terminated()
        for instance_id, (ec2, region) in running.items():
            app = self.apps.get(instance_id)
            if app is not None:
                changed |= self._check(app)
                continue
            user_data = self._user_data(ec2, instance_id)
            settings, source = settings_from(user_data), source_from(user_data)
            if settings is None or source is None:
                continue
            self.apps[instance_id] = self._start(instance_id, region, settings.port, source, user_data)
            changed = True
        return changed

    def restart_due(self) -> bool:
        """True when an app waited out its RestartSec: the main loop must make a pass (no API call to know)."""
        return self.next_wake() == 0.0

    def next_wake(self) -> float | None:
        """Seconds until a restart is due (the main loop should pass again by then), or None when none is."""
        due = [a.restart_at for a in self.apps.values() if a.status == "restarting" and a.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _start(self, instance_id: str, region: str, instance_port: int, source: str, user_data: str) -> AppProcess:
        folder = self.home / "apps" / instance_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "shop_app.py").write_text(source)
        (folder / "user-data.sh").write_text(user_data)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LABKIT_APP_"))},
            "AWS_ENDPOINT_URL": self.endpoint,
            **home_credentials(self.home).for_environment(),  # the app's boto3 signs with the home's pair
            "LABKIT_HOME": str(self.home),
        }
        log_file = folder / "app.log"
        command = [
            sys.executable, "-m", "labkit.sandbox.procs.apphost", "--source", str(folder / "shop_app.py"),
            "--user-data", str(folder / "user-data.sh"), "--instance", instance_id, "--region", region,
            "--endpoint", self.endpoint, "--port",
        ]  # fmt: skip
        policy = RestartPolicy.from_user_data(user_data)
        app = AppProcess(instance_id, region, instance_port, port, self._spawn(command, env, port, log_file),
                         log_file, command, env, policy)  # fmt: skip
        app.starts.append(time.monotonic())
        log.info("instance %s: app started on port %d (stands for %d), pid %d", instance_id, port, instance_port,
                 app.process.pid)  # fmt: skip
        return app

    def _spawn(self, command: list[str], env: dict[str, str], port: int, log_file: Path) -> subprocess.Popen[bytes]:
        with open(log_file, "ab") as output:
            process = subprocess.Popen(
                [*command, str(port)], env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        if self.on_exit is not None:
            threading.Thread(
                target=_watch, args=(process, self.on_exit), name=f"app-{process.pid}", daemon=True
            ).start()
        return process

    def _restart(self, app: AppProcess, now: float) -> None:
        """Start the app again after RestartSec, on its port when that is still free (the start limit checked)."""
        if app.policy.start_limit_hit(app.starts, now):
            app.status, app.restart_at = "failed", None
            app.error = (
                f"start request repeated too quickly: {app.policy.burst} starts within "
                f"{app.policy.interval:g} s (StartLimitBurst, StartLimitIntervalSec); last exit: {app.last_exit}"
            )
            log.error("app of %s: %s", app.instance_id, app.error)
            return
        if port_in_use(app.port):
            log.warning("app of %s: port %d is taken; restarting it on another port", app.instance_id, app.port)
            app.port = free_port()
        app.process = self._spawn(app.command, app.env, app.port, app.log_file)
        app.starts.append(now)
        app.restarts += 1
        app.status, app.restart_at = "starting", None
        log.info("app of %s restarted (restart %d) on port %d, pid %d", app.instance_id, app.restarts, app.port,
                 app.process.pid)  # fmt: skip

    def _check(self, app: AppProcess) -> bool:
        """Notice when a starting app listens, when an app died (its log tail becomes the error; the unit's
        policy decides whether it restarts), and when a restart is due."""
        now = time.monotonic()
        returncode = app.process.poll()
        if app.status in ("starting", "running") and returncode is not None:
            app.last_exit, app.error = _describe_exit(returncode), _tail(app.log_file)
            log.error("app of %s exited (%s): %s", app.instance_id, app.last_exit, app.error)
            if app.policy.restarts_after(returncode):
                app.status, app.restart_at = "restarting", now + app.policy.delay
            else:
                app.status = "failed"
            return True
        if app.status == "restarting" and app.restart_at is not None and now >= app.restart_at:
            self._restart(app, now)
            return True
        if app.status == "starting" and port_in_use(app.port):
            app.status = "running"
            return True
        return False

    def wait_started(self, timeout: float = READY_TIMEOUT) -> bool:
        """Block until every starting app listens (or failed); True when something changed."""
        deadline = time.monotonic() + timeout
        changed = False
        while any(a.status == "starting" for a in self.apps.values()) and time.monotonic() < deadline:
            for app in self.apps.values():
                changed |= self._check(app)
            time.sleep(0.05)
        return changed

    @staticmethod
    def _stop(app: AppProcess) -> None:
        app.status = "stopping"  # stopped on purpose: not restarted
        if app.process.poll() is None:
            terminate(app.process.pid, grace=5)
        app.process.wait(timeout=10)

    def shutdown(self) -> None:
        for app in self.apps.values():
            self._stop(app)
        self.apps.clear()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """What the state file records: the plugin forwards instance-port traffic with it."""
        return {
            instance_id: {
                "port": app.port, "instance_port": app.instance_port, "pid": app.process.pid,
                "status": app.status, "region": app.region, "log_file": str(app.log_file), "error": app.error,
                "restarts": app.restarts, "last_exit": app.last_exit,
            }
            for instance_id, app in self.apps.items()
        }  # fmt: skip


def _watch(process: subprocess.Popen[bytes], on_exit: Callable[[], None]) -> None:
    """Wait for one app process to end and say so (the supervisor reads the exit on its next pass)."""
    process.wait()
    on_exit()


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "exited"
