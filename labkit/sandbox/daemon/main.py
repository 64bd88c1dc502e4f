"""The sandbox daemon's entry point: a moto server (the AWS API, with the SSM emulation in front), the reconciler
(the databases) and the app supervisor (each lab instance's web app), in one detached process.

Runs as its own process: `labkit sandbox up` starts `python -m labkit.sandbox.daemon.main` in its own session so
it outlives notebook kernels. It is durable: the control plane is saved after every change (persist.py) and
loaded at start, and the databases keep their data directories, so `down` + `up`, a crash or a reboot find the
lab as it was. Stopped by SIGTERM, on which it stops every database server (keeping its data) and removes the
state file (where it listens, which is no longer true).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# moto reads these when it is imported: AWS-managed IAM policies (AmazonSSMManagedInstanceCore) and
# the same AMI / instance-type / key-pair validation a learner's real account would apply.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
os.environ.setdefault("MOTO_ENABLE_AMI_VALIDATION", "true")
os.environ.setdefault("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
os.environ.setdefault("MOTO_ENABLE_KEYPAIR_VALIDATION", "true")

import boto3
from botocore.config import Config
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from labkit.aws.servicemodels import new_session
from labkit.home import private_dir
from labkit.locks import daemon_lock_path, holder_pid, try_acquire
from labkit.sandbox.daemon import amis, rdsmodel, regions
from labkit.sandbox.daemon.apps import AppSupervisor
from labkit.sandbox.daemon.catalog import EngineCatalog
from labkit.sandbox.daemon.changes import RECONCILER_AGENT, ApiChanges, SaveOnChange, WakeOnChange
from labkit.sandbox.daemon.failures import FailureLog
from labkit.sandbox.daemon.persist import ControlPlaneStore, SnapshotError
from labkit.sandbox.daemon.rdsmodel import InstanceStates
from labkit.sandbox.daemon.reconciler import ClusterView, Reconciler, managed_master_password, new_password
from labkit.sandbox.daemon.rotation import PasswordAtCreate, RotateManagedSecrets
from labkit.sandbox.daemon.ssm import SessionManager
from labkit.sandbox.engines.base import check_installed
from labkit.sandbox.signing import SignedRequestsOnly, home_credentials
from labkit.sandbox.state import SandboxState, changes_path, state_path, write_state
from labkit.sandbox.vpc.lean import ensure_models

REGION_LISTS = regions.shared()  # before moto's service models are imported (on first use): see regions.py
amis.without_ecs_images()  # before moto's EC2 models are imported: see amis.py
# Every request is the sandbox account's, the one the snapshot saves. Without this moto looks the caller's access key
# up in every partition's IAM (six), and so makes six IAM accounts of ~1,300 managed policies each on the first
# request: seconds of a cold start, and a sixth of each later save and load each.
os.environ["MOTO_ACCOUNT_ID"] = DEFAULT_ACCOUNT_ID
log = logging.getLogger("labkit.sandbox")
POLL_SECONDS = 1.0  # how often dead processes are looked for (no API call: each child is asked)
CATCH_UP_POLL_SECONDS = 0.1  # while a replica catches up: it joins the reader endpoint as soon as it has
FULL_PASS_SECONDS = 15.0  # the fallback: a full pass (API reads) even when nothing said something changed
SETTLE_PATIENCE_SECONDS = 60.0  # the warm-up waits this long at most for the databases to settle (see _warm_up)
EXIT_SNAPSHOT = 4  # the saved control plane cannot be loaded: `up` shows why and the way out


def _moto_server(
    port: int, wake: threading.Event, changes: ApiChanges, store: ControlPlaneStore, reconciler: Reconciler
) -> Any:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log
    sessions = SessionManager(DomainDispatcherApplication(create_backend_app), changes)
    rotation = RotateManagedSecrets(
        PasswordAtCreate(sessions, new_password), reconciler.cluster_of_secret, reconciler.set_master_password,
        new_password,
    )  # fmt: skip
    app = WakeOnChange(SaveOnChange(InstanceStates(EngineCatalog(rotation), wake), store), wake, changes)
    app = SignedRequestsOnly(app, changes.path.parent)  # the home's key pair only: nobody else's calls
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


def _moto_backends(service: str) -> Any:
    """moto's in-memory backends of `service`, region by region, for the sandbox's account.

    moto imports a service's models on first lookup (about 0.7 s for EC2 and RDS), after the daemon reports ready.
    """
    return get_backend(service)[DEFAULT_ACCOUNT_ID]


def _regions_with_clusters() -> list[str]:
    """Regions whose RDS backend holds any cluster (moto keeps one backend per account and region)."""
    regions = []
    for region, backend in _moto_backends("rds").items():
        if getattr(backend, "clusters", None):
            regions.append(region)
    return regions


def _regions_with_instances() -> list[str]:
    """Regions whose EC2 backend holds any instance."""
    return [region for region, backend in _moto_backends("ec2").items() if backend.reservations]


def _given_password(region: str, cluster: str) -> str | None:
    """A MasterUserPassword given at create time: moto never returns it (nor does AWS), so read its model."""
    model = _moto_backends("rds")[region].clusters.get(cluster)
    return getattr(model, "_master_user_password", None) if model else None


class SandboxDaemon:
    """The daemon's life in three steps: `start()` loads the saved lab and serves the API, `run_pass()` looks at the
    databases and the apps once (when something says they changed), `stop()` stops them, keeping their data.

    `serve()` runs passes until a signal asks it to stop; `run()` is start, serve, stop.
    """

    def __init__(self, home: Path, port: int, region: str) -> None:
        self.home = home
        self.port = port
        self.region = region
        self.wake = threading.Event()  # an API call, a process exit or a signal: a pass is due now
        self.stopping = threading.Event()
        self.child_exited = threading.Event()
        self.store = ControlPlaneStore(home, DEFAULT_ACCOUNT_ID)
        self.changes: ApiChanges | None = None
        self.reconciler: Reconciler | None = None
        self.apps: AppSupervisor | None = None
        self.server: Any = None
        self.state: SandboxState | None = None
        self.endpoint = ""
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._client_locks: dict[str, threading.Lock] = {}  # one per client: others are made meanwhile
        self._session: boto3.Session | None = None
        self._config = Config(user_agent_extra=RECONCILER_AGENT, retries={"max_attempts": 2})
        self._seen_changes = -1
        self._last_full = 0.0
        self.failures = FailureLog(log)  # a failure every pass is logged in full once, then a line a minute

    # ---- start -----------------------------------------------------------------------------------

    def start(self) -> int | None:
        """Load the saved lab, serve the API and write the state file (`ready`); an exit code when it must not run."""
        try:
            restored = self.store.load()  # before serving: nobody sees an empty account that is not
        except SnapshotError as exc:
            log.error("%s; fix: %s", exc.message, exc.fix)
            return EXIT_SNAPSHOT
        self._session = new_session(**home_credentials(self.home).for_boto3())  # models read once (servicemodels.py)
        reconciler = Reconciler(
            self.home / "data", _admin_password(self.home), self._rds_clients, self._master_password,
            _repl_password(self.home), model=rdsmodel, control_plane_restored=restored,
        )  # fmt: skip
        self.reconciler = reconciler
        if restored:  # what ran before is started again: not `available` until it answers
            rdsmodel.restarting(reconciler.records)
        # The template first, in its own thread: mariadb-install-db (or initdb) runs on the other core while this
        # process imports moto's service models, instead of after them (cold: seconds off the first query).
        threading.Thread(target=_prepare_template, args=(reconciler,), name="template", daemon=True).start()
        self.changes = ApiChanges(self.home)
        self.server = _moto_server(self.port, self.wake, self.changes, self.store, reconciler)
        self.port = self.server.server_port  # the reconciler's clients call it from now on
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, name="moto", daemon=True).start()
        log.info("moto server on %s", self.endpoint)
        self.apps = AppSupervisor(
            self.home, self.endpoint, lambda: [self.client("ec2", r) for r in _regions_with_instances()]
        )
        threading.Thread(
            target=_warm_up, args=(self.client, self.region, self.home, self._settled), name="warm-up", daemon=True
        ).start()
        self.state = SandboxState(
            daemon_pid=os.getpid(), endpoint_url=self.endpoint, port=self.port, region=self.region,
            home=str(self.home), log_file=str(self.home / "sandbox.log"), started_at=time.time(), ready=True,
        )  # fmt: skip
        write_state(self.state, self.home)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGCHLD, self._on_child_exit)
        return None

    def client(self, service: str, client_region: str) -> Any:
        """A boto3 client of this daemon's own API (the reconciler's user agent: its calls do not wake it)."""
        key = f"{service}:{client_region}"
        with self._clients_lock:
            made_once = self._client_locks.setdefault(key, threading.Lock())
        with made_once:  # the warm-up and the first pass ask for RDS's at once: one parse of its model, not two
            if key not in self._clients:
                assert self._session is not None, "start() makes the session"
                self._clients[key] = self._session.client(
                    service, region_name=client_region, endpoint_url=self.endpoint, config=self._config
                )
            return self._clients[key]

    def _settled(self) -> bool:
        """No API change waits for a pass, and the reconciler starts no server (see Reconciler.settled)."""
        return (
            self.changes is not None
            and self.changes.count == self._seen_changes
            and bool(self.reconciler and self.reconciler.settled())
        )

    def _rds_clients(self) -> list[Any]:
        return [self.client("rds", r) for r in _regions_with_clusters()]

    def _master_password(self, rds: Any, cluster: ClusterView) -> str:
        client_region = rds.meta.region_name
        if cluster.secret_arn:  # generated for this cluster and stored in its secret (not moto's constant)
            return managed_master_password(self.client("secretsmanager", client_region), cluster.secret_arn)
        return _given_password(client_region, cluster.identifier) or ""

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping.set()
        self.wake.set()

    def _on_child_exit(self, signum: int, frame: Any) -> None:  # a database or an app died (or a helper ended)
        self.child_exited.set()
        self.wake.set()

    # ---- one pass --------------------------------------------------------------------------------

    def serve(self) -> None:
        """Run passes until SIGTERM or SIGINT."""
        assert self.reconciler is not None, "start() first"
        while not self.stopping.is_set():
            # The first pass at once: a restored lab's servers start now, not a poll interval (1 s) after `up`.
            self.wake.clear()
            self.run_pass()
            self.wake.wait(CATCH_UP_POLL_SECONDS if self.reconciler.catching_up() else POLL_SECONDS)

    def run_pass(self) -> None:
        """Check the servers' health; then, when something says it changed (an API call, a process exit, a heal)
        or as a slow fallback, reconcile the databases and the apps and record what runs.

        Event-driven: a full pass (API reads) only when needed; otherwise an idle sandbox costs a few process
        polls a second. Every step's failure is logged and the daemon keeps serving.
        """
        reconciler, apps, changes = self.reconciler, self.apps, self.changes
        assert reconciler is not None and apps is not None and changes is not None, "start() first"
        exited = self.child_exited.is_set()
        self.child_exited.clear()
        healed = False
        try:
            healed = reconciler.check_health()
        except Exception:
            self.failures.exception("health check failed")
        if healed:  # a failover or a restart: clients follow the endpoint map now, not after a full pass
            self._record()
        due = (
            healed
            or exited
            or changes.count != self._seen_changes
            or apps.restart_due()  # an app waiting out its RestartSec (no API call)
            or time.monotonic() - self._last_full > FULL_PASS_SECONDS
        )
        if not due:
            return
        self._seen_changes, self._last_full = changes.count, time.monotonic()
        changed = False
        try:
            changed |= reconciler.reconcile()
        except Exception:  # keep serving; the log says what went wrong
            self.failures.exception("reconcile failed")
            changed = True
        try:
            changed |= apps.reconcile()
            changed |= apps.wait_started()
        except Exception:
            self.failures.exception("app supervision failed")
        if changed:
            self._record()
        try:
            if reconciler.publish_states():  # `available` only once the state file can resolve it
                _save(self.store, None, self.home)
        except Exception:
            self.failures.exception("publishing instance states failed")
        try:
            if reconciler.restart_pending():  # old writers of failovers, now that clients moved on
                self.wake.set()
        except Exception:
            self.failures.exception("restart after failover failed")

    def _record(self) -> None:
        """Write what the reconciler and the app supervisor now run: the control plane first, then the state file
        (the endpoint map), so a client never reaches a writer the saved control plane does not name."""
        assert self.state is not None and self.reconciler is not None and self.apps is not None
        self.state.instances, self.state.clusters = self.reconciler.snapshot()
        self.state.apps = self.apps.snapshot()
        self.state.generation += 1
        _save(self.store, self.state, self.home)

    # ---- stop ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the apps and the databases (their data stays), save, and remove the state file."""
        log.info("stopping")
        if self.apps is not None:
            self.apps.shutdown()
        if self.reconciler is not None:
            self.reconciler.shutdown()  # stops the servers; their data stays
        if self.server is not None:
            self.server.shutdown()
        _save(self.store, None, self.home)
        REGION_LISTS.save()
        state_path(self.home).unlink(missing_ok=True)
        changes_path(self.home).unlink(missing_ok=True)
        log.info("%d saves of the control plane, %.0f ms in all", self.store.saves, self.store.save_seconds * 1e3)


def run(home: Path, port: int, region: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    lifetime_lock = try_acquire(daemon_lock_path(home))  # one daemon per home: held (open) until this process ends
    if lifetime_lock is None:
        log.error("another sandbox daemon (pid %s) owns %s; exiting", holder_pid(daemon_lock_path(home)), home)
        return 3
    daemon = SandboxDaemon(home, port, region)
    refused = daemon.start()
    if refused is not None:
        return refused
    try:
        daemon.serve()
    finally:
        daemon.stop()
    return 0


def _save(store: ControlPlaneStore, state: SandboxState | None, home: Path) -> None:
    """Save what a reconciler pass changed (moto and the state file); a failed save, whatever its cause, is logged,
    never fatal: the next pass tries again, and no data is touched."""
    try:
        store.save(rollback=False)
    except Exception as exc:
        log.error(
            "could not save the control plane: %s: %s (will retry)", type(exc).__name__, exc,
            exc_info=not isinstance(exc, OSError),
        )  # fmt: skip
    if state is None:
        return
    try:
        write_state(state, home)
    except OSError as exc:
        log.error("could not write the state file: %s (will retry)", exc)


def _prepare_template(reconciler: Reconciler) -> None:
    """Check the lab's database engine and make its template now, before the first instance needs it.

    Beside the start, not before it: `sandbox up` checked the engine a moment ago (the daemon's own check cost
    0.1-0.2 s of every start); an instance whose engine cannot run fails with the reason and its fix."""
    started = time.perf_counter()
    try:
        check_installed()
        reconciler.prepare()
    except Exception:
        log.exception("preparing the database template failed")
    else:
        log.info("database template ready in %.2f s", time.perf_counter() - started)


def _warm_up(client: Callable[[str, str], Any], region: str, home: Path, settled: Callable[[], bool]) -> None:
    """Load moto's service models now, so the learner's first calls are fast: RDS and Secrets Manager at once (a
    lab's first calls, and what a restored lab's first pass reads), the others once the databases being created or
    restarted answer. In this process they take the interpreter from the pass that starts those databases, and the
    trimmed models of a new home (a child process, 1-1.5 s of a core) take a core from their servers: made beside
    them, both slowed the first query. Nothing needs the trimmed models before a tunnel opens, which makes them
    itself when missing."""
    started = time.perf_counter()
    first = [("rds", "describe_db_clusters"), ("secretsmanager", "list_secrets")]
    later = [
        ("sts", "get_caller_identity"), ("ec2", "describe_vpcs"), ("ssm", "describe_parameters"),
        ("iam", "list_roles"), ("resourcegroupstaggingapi", "get_resources"),
    ]  # fmt: skip
    _call_each(client, region, first)
    deadline = time.monotonic() + SETTLE_PATIENCE_SECONDS
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.1)
    _call_each(client, region, later)
    try:
        ensure_models(home)  # the trimmed service models tunnels and app hosts load (vpc/lean.py), made once
    except Exception:
        log.exception("preparing the trimmed service models failed")
    REGION_LISTS.save()  # what this start read from botocore, for the next one
    log.info("warm-up done in %.2f s", time.perf_counter() - started)


def _call_each(client: Callable[[str, str], Any], region: str, calls: list[tuple[str, str]]) -> None:
    for service, operation in calls:
        try:
            getattr(client(service, region), operation)()
        except Exception:
            log.exception("warm-up call %s.%s failed", service, operation)


def _admin_password(home: Path) -> str:
    """The hidden admin password, kept in the home directory (0600), the same for the template's life."""
    return _secret_file(home / "data" / "admin.secret")


def _repl_password(home: Path) -> str:
    """The replication user's password: its own, not the admin's; kept beside it (0600)."""
    return _secret_file(home / "data" / "repl.secret")


def _secret_file(path: Path) -> str:
    """A generated secret kept in `path`: made once, created 0600 (never readable by anyone else, not even
    for a moment) in a 0700 directory; an existing file's and directory's modes are tightened."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
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
