"""Run the web app of each running lab instance, as its user data would on EC2.

Runs in the daemon, on its main loop; each app runs in an app host process (procs/apphost.py) it starts.
For every EC2 instance in the control plane whose user data installs the lab's app, the supervisor extracts
the app source and settings from that user data and runs the source as a local process while the instance
is running (stopped with it, started again with it, removed when it is terminated). The process listens on
a free local port that stands for the instance's port 8080; its database connections go through the
sandbox's network (vpc/network.py), so the security groups decide what it reaches.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.app.userdata import settings_from, source_from
from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.sandbox.processes import die_with_parent, free_port, port_in_use, terminate

log = logging.getLogger("labkit.sandbox.daemon.apps")
READY_TIMEOUT = 15.0


@dataclass
class AppProcess:
    instance_id: str
    region: str
    instance_port: int
    port: int
    process: subprocess.Popen[bytes]
    log_file: Path
    status: str = "starting"
    error: str | None = None


class AppSupervisor:
    """Owns the app processes; `reconcile()` is safe to call as often as you like."""

    def __init__(self, home: Path, endpoint: str, ec2_clients: Callable[[], list[Any]]) -> None:
        self.home = home
        self.endpoint = endpoint
        self.ec2_clients = ec2_clients
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

    def _start(self, instance_id: str, region: str, instance_port: int, source: str, user_data: str) -> AppProcess:
        folder = self.home / "apps" / instance_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "shop_app.py").write_text(source)
        (folder / "user-data.sh").write_text(user_data)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LABKIT_APP_"))},
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
            "LABKIT_HOME": str(self.home),
        }
        log_file = folder / "app.log"
        command = [
            sys.executable, "-m", "labkit.sandbox.procs.apphost", "--source", str(folder / "shop_app.py"),
            "--user-data", str(folder / "user-data.sh"), "--instance", instance_id, "--region", region,
            "--endpoint", self.endpoint, "--port", str(port),
        ]  # fmt: skip
        with open(log_file, "ab") as output:
            process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        log.info("instance %s: app started on port %d (stands for %d), pid %d", instance_id, port, instance_port,
                 process.pid)  # fmt: skip
        return AppProcess(instance_id, region, instance_port, port, process, log_file)

    def _check(self, app: AppProcess) -> bool:
        """Notice when a starting app listens, or when an app died (its log tail becomes the error)."""
        if app.process.poll() is not None and app.status != "failed":
            app.status, app.error = "failed", _tail(app.log_file)
            log.error("app of %s exited: %s", app.instance_id, app.error)
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
            }
            for instance_id, app in self.apps.items()
        }  # fmt: skip


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "exited"
