"""The sandbox daemon: a moto server (the AWS API), the reconciler (the databases) and the app supervisor
(each lab instance's web app), in one detached process.

Started by `labkit sandbox up` in its own session so it outlives notebook kernels; stopped by SIGTERM,
on which it stops every MariaDB server, deletes their data and removes the state file.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

# moto reads these when it is imported: AWS-managed IAM policies (AmazonSSMManagedInstanceCore) and
# the same AMI / instance-type / key-pair validation a learner's real account would apply.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
os.environ.setdefault("MOTO_ENABLE_AMI_VALIDATION", "true")
os.environ.setdefault("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
os.environ.setdefault("MOTO_ENABLE_KEYPAIR_VALIDATION", "true")

import boto3
from botocore.config import Config

from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.sandbox.daemon.apps import AppSupervisor
from labkit.sandbox.daemon.reconciler import ClusterView, Reconciler, secret_password
from labkit.sandbox.daemon.ssm import SessionManager
from labkit.sandbox.engines.mariadb import find_binaries
from labkit.sandbox.state import SandboxState, changes_path, state_path, write_state

log = logging.getLogger("labkit.sandbox")
RECONCILER_AGENT = "labkit-reconciler"
POLL_SECONDS = 1.0


READ_ACTIONS = ("Describe", "List", "Get", "Search")
SESSION_ACTIONS = ("StartSession", "ResumeSession", "TerminateSession")  # sessions change no resource


class ApiChanges:
    """A count of mutating API calls, kept in a file: a reader that saw the same count saw the same account.

    The sandbox's session plugin re-reads the security rules only when the count moves.
    """

    def __init__(self, home: Path) -> None:
        self.path = changes_path(home)
        self.count = 0
        self._lock = threading.Lock()
        self._write()

    def bump(self) -> None:
        with self._lock:
            self.count += 1
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(self.count))
        os.replace(tmp, self.path)


def _action(environ: dict[str, Any]) -> str:
    """The API action of a request: from X-Amz-Target (JSON protocols) or the form body (query protocol)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rpartition(".")[2]
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        return (parse_qs(body.decode(errors="replace")).get("Action") or [""])[0]
    return ""


class WakeOnChange:
    """WSGI middleware: after any mutating API call from outside, count it and wake the reconciler at once."""

    def __init__(self, app: Any, wake: threading.Event, changes: ApiChanges | None = None) -> None:
        self.app = app
        self.wake = wake
        self.changes = changes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        is_post = environ.get("REQUEST_METHOD") == "POST"
        action = _action(environ) if is_post else ""
        result = self.app(environ, start_response)
        if is_post and not action.startswith(READ_ACTIONS + SESSION_ACTIONS):
            if self.changes is not None:  # before the response goes out: the caller's next step sees the new count
                self.changes.bump()
            if RECONCILER_AGENT not in environ.get("HTTP_USER_AGENT", ""):
                self.wake.set()
        return result


def _moto_server(port: int, wake: threading.Event, changes: ApiChanges) -> Any:
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log
    endpoint: list[str] = []
    sessions = SessionManager(DomainDispatcherApplication(create_backend_app), lambda: endpoint[0], changes)
    app = WakeOnChange(sessions, wake, changes)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    endpoint.append(f"http://127.0.0.1:{server.server_port}")
    return server


def _regions_with_clusters() -> list[str]:
    """Regions whose RDS backend holds any cluster (moto keeps one backend per account and region)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    regions = []
    for region, backend in rds_backends[DEFAULT_ACCOUNT_ID].items():
        if getattr(backend, "clusters", None):
            regions.append(region)
    return regions


def _regions_with_instances() -> list[str]:
    """Regions whose EC2 backend holds any instance."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    return [region for region, backend in ec2_backends[DEFAULT_ACCOUNT_ID].items() if backend.reservations]


def _given_password(region: str, cluster: str) -> str | None:
    """A MasterUserPassword given at create time: moto never returns it (nor does AWS), so read its model."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    model = rds_backends[DEFAULT_ACCOUNT_ID][region].clusters.get(cluster)
    return getattr(model, "_master_user_password", None) if model else None


def run(home: Path, port: int, region: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    binaries = find_binaries()
    wake = threading.Event()
    stop = threading.Event()
    server = _moto_server(port, wake, ApiChanges(home))
    port = server.server_port
    endpoint = f"http://127.0.0.1:{port}"
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    log.info("moto server on %s", endpoint)

    session = boto3.Session(**FAKE_CREDENTIALS)
    config = Config(user_agent_extra=RECONCILER_AGENT, retries={"max_attempts": 2})
    clients: dict[str, Any] = {}

    def client(service: str, client_region: str) -> Any:
        key = f"{service}:{client_region}"
        if key not in clients:
            clients[key] = session.client(service, region_name=client_region, endpoint_url=endpoint, config=config)
        return clients[key]

    def rds_clients() -> list[Any]:
        return [client("rds", r) for r in _regions_with_clusters()]

    def master_password(rds: Any, cluster: ClusterView) -> str:
        client_region = rds.meta.region_name
        if cluster.secret_arn:
            return secret_password(client("secretsmanager", client_region), cluster.secret_arn)
        return _given_password(client_region, cluster.identifier) or ""

    admin_password = _admin_password(home)
    reconciler = Reconciler(home / "data", binaries, admin_password, rds_clients, master_password)
    apps = AppSupervisor(home, endpoint, lambda: [client("ec2", r) for r in _regions_with_instances()])
    threading.Thread(target=_warm_up, args=(client, region, reconciler), name="warm-up", daemon=True).start()
    state = SandboxState(
        daemon_pid=os.getpid(), endpoint_url=endpoint, port=port, region=region, home=str(home),
        log_file=str(home / "sandbox.log"), started_at=time.time(), ready=True,
    )  # fmt: skip
    write_state(state, home)

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop.is_set():
            wake.wait(POLL_SECONDS)
            wake.clear()
            if stop.is_set():
                break
            try:
                changed = reconciler.reconcile()
            except Exception:  # keep serving; the log says what went wrong
                log.exception("reconcile failed")
                changed = True
            try:
                changed |= apps.reconcile()
                changed |= apps.wait_started()
            except Exception:
                log.exception("app supervision failed")
            if changed:
                state.instances, state.clusters = reconciler.snapshot()
                state.apps = apps.snapshot()
                state.generation += 1
                write_state(state, home)
    finally:
        log.info("stopping")
        apps.shutdown()
        reconciler.shutdown()
        server.shutdown()
        state_path(home).unlink(missing_ok=True)
        changes_path(home).unlink(missing_ok=True)
    return 0


def _warm_up(client: Any, region: str, reconciler: Reconciler) -> None:
    """Load moto's service models and the MariaDB template now, so the learner's first calls are fast."""
    calls = [
        ("sts", "get_caller_identity"), ("ec2", "describe_vpcs"), ("rds", "describe_db_clusters"),
        ("secretsmanager", "list_secrets"), ("iam", "list_roles"), ("ssm", "describe_parameters"),
        ("resourcegroupstaggingapi", "get_resources"),
    ]  # fmt: skip
    for service, operation in calls:
        try:
            getattr(client(service, region), operation)()
        except Exception:
            log.exception("warm-up call %s.%s failed", service, operation)
    try:
        reconciler.prepare()
    except Exception:
        log.exception("preparing the MariaDB template failed")


def _admin_password(home: Path) -> str:
    """The hidden admin password, kept in the home directory (0600), the same for the template's life."""
    from labkit.sandbox.engines.mariadb import new_secret

    path = home / "data" / "admin.secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(new_secret())
        path.chmod(0o600)
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit-sandbox-daemon")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    return run(args.home, args.port, args.region)


if __name__ == "__main__":
    sys.exit(main())
