"""Make the data plane match the control plane: one database server per Aurora DB instance, replicas following
the writer.

Runs in the daemon, on its main loop. The reconciler reads RDS state through the same public describe calls a
learner's code makes. It starts a server for each new instance, removes the server of each deleted one,
bootstraps a cluster's first writer (master user with a password generated for the cluster and stored in its
managed secret, initial database), points replicas at
the writer, and carries out a failover for real: fence the old writer, let the new one catch up, promote it,
re-point the rest. It drives servers only through the engine interface (engines/base.py), choosing the engine
by each cluster's `Engine`; a cluster of an engine the sandbox does not run gets no servers.

No acknowledged write is lost, however often the writer dies (Aurora's promise, kept by its shared volume): a
dead writer is restarted on its own data first, which holds every commit it acknowledged, and the reader it
fails over to applies all of it before it takes writes; when that reader cannot, the old writer takes writes
again. A replica joins the reader endpoint (and becomes `available`) only once it has caught up with the writer;
one that can never replicate again (its history diverged) is rebuilt from the writer, its old data kept under
`data/orphans/`. While a cluster has a healthy reader, its writer acknowledges a commit only once a replica
has it.

What it knows about each server (its server id, port, and which clusters are bootstrapped) is kept in
`data/databases.json`, so a restarted daemon starts each instance's server on its own data directory, and a
cluster's writer is never bootstrapped twice. A server's data is deleted only when its DB instance is deleted.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from labkit.engines import described
from labkit.errors import SandboxError
from labkit.home import private_dir, write_durably
from labkit.sandbox.daemon.failures import FailureLog
from labkit.sandbox.daemon.moves import EndpointMoves
from labkit.sandbox.engines.base import (
    BROKEN,
    DEFAULT_ENGINE,
    REPLICATING,
    STOPPED,
    DatabaseEngine,
    DatabaseServer,
    engine_class,
)
from labkit.sandbox.processes import free_port, port_in_use
from labkit.sandbox.procs.settings import endpoint_delay as endpoint_delay_setting
from labkit.sandbox.tls import endpoint_names

log = logging.getLogger("labkit.sandbox.daemon.reconciler")
RECORDS_FILE = "databases.json"
CATCH_UP_SECONDS = 10.0  # how long a new writer may take to apply what the old one committed, else no failover
READER_CHECK_SECONDS = 3.0  # how often a reader's replication is checked (catching-up ones at every poll)
# A server's role, as the state file records it (the endpoint map reads "writer" and "reader").
WRITER, READER = "writer", "reader"
CATCHING_UP = "catching-up"  # pointed at the writer, not yet holding what the writer had then: no endpoint yet
FENCED = "fenced"  # an old writer that takes no writes, about to replicate from the new one


@dataclass
class ClusterView:
    """What the control plane says a cluster should look like."""

    identifier: str
    engine: str  # the cluster's Engine, which picks the data-plane engine
    endpoint: str
    reader_endpoint: str
    port: int
    master_username: str
    database: str | None
    secret_arn: str | None
    writer: str | None
    members: list[str] = field(default_factory=list)
    require_tls: bool = False  # its cluster parameter group requires TLS (require_secure_transport, rds.force_ssl)


@dataclass
class InstanceView:
    identifier: str
    cluster: str
    endpoint: str
    status: str = "available"


class ControlPlaneModel(Protocol):
    """What Aurora's control plane does on its own (daemon/rdsmodel.py writes it into moto's state)."""

    def set_status(self, region: str, instance: str, status: str) -> bool: ...
    def take_reboot(self, region: str, instance: str) -> bool | None: ...
    def fail_over(self, region: str, cluster: str, target: str) -> None: ...
    def add_event(self, region: str, source_type: str, source: str, message: str, categories: list[str]) -> None: ...


class Reconciler:
    """Owns the database server processes; `reconcile()` is safe to call as often as you like."""

    def __init__(
        self,
        data_root: Path,
        admin_password: str,
        rds_clients: Callable[[], list[Any]],
        master_password: Callable[[Any, ClusterView], str],
        repl_password: str | None = None,
        model: ControlPlaneModel | None = None,
        control_plane_restored: bool = True,
        endpoint_delay: float | None = None,
    ) -> None:
        """`control_plane_restored=False`: the daemon started without a saved control plane (a new sandbox, or
        its snapshot moved aside, the way out of one that cannot be loaded). What databases.json says then
        belongs to a control plane that is gone, so it is moved aside (see `_set_aside_records`).
        `endpoint_delay`: seconds until a cluster endpoint follows a new writer (None: the sandbox's setting)."""
        self.data_root = data_root
        self.admin_password = admin_password
        self.repl_password = repl_password or new_password()  # never the admin's: its own account, its own secret
        self.rds_clients = rds_clients
        self.master_password = master_password
        self.model = model  # None: nothing is written back (states stay as the control plane has them)
        self.region_of: dict[str, str] = {}  # cluster -> its region
        self._observed: dict[str, InstanceView] = {}
        self.pending_restarts: dict[str, str] = {}  # instance -> its event message, restarted after a failover
        self.servers: dict[str, DatabaseServer] = {}
        self.roles: dict[str, str] = {}
        self.cluster_of: dict[str, str] = {}
        self.endpoints: dict[str, str] = {}
        self.writers: dict[str, str] = {}
        self.clusters: dict[str, ClusterView] = {}
        self.bootstrapped: set[str] = set()
        self.master_passwords: dict[str, str] = {}  # cluster -> its master password, until its writer is bootstrapped
        self.errors: dict[str, str] = {}
        self.next_server_id = 1
        self.lock = threading.Lock()
        self._engines: dict[type[DatabaseEngine], DatabaseEngine] = {}
        self._engines_lock = threading.Lock()
        self._unsupported: set[str] = set()  # clusters already logged as running an engine the sandbox lacks
        self.records: dict[str, dict[str, Any]] = {}  # instance -> {server_id, port}: what a restart reuses
        self.engine_of: dict[str, str] = {}  # instance -> its cluster's Engine
        self.catch_up_to: dict[str, str] = {}  # catching-up replica -> the writer's position when it was pointed
        self._acks: dict[str, tuple[str, int | None, bool]] = {}  # cluster -> (writer, pid, replica ack required)
        self._readers_checked = 0.0
        self.failures = FailureLog(log)  # what fails on every pass is logged in full once, then a line a minute
        self.moves = EndpointMoves(endpoint_delay_setting() if endpoint_delay is None else endpoint_delay)
        if not control_plane_restored:
            self._set_aside_records()
        self._load_records()

    # ---- what survives a restart ---------------------------------------------------------------

    @property
    def records_path(self) -> Path:
        return self.data_root / RECORDS_FILE

    def _load_records(self) -> None:
        try:
            saved = json.loads(self.records_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:  # damaged: start servers fresh-numbered, but touch no data
            log.error("ignoring %s: %s", self.records_path, exc)
            return
        self.records = dict(saved.get("servers", {}))
        self.bootstrapped = set(saved.get("bootstrapped", []))
        self.next_server_id = max(
            [int(saved.get("next_server_id", 1)), *(r["server_id"] + 1 for r in self.records.values())]
        )

    def _set_aside_records(self) -> None:
        """Move databases.json to orphans/, never delete it: its servers and bootstrapped clusters belong to the lost
        control plane. Kept, a lab rebuilt with the same names would reuse the old data directories, whose master
        password is the old one, and the cluster would never be bootstrapped with its new managed password
        ('Access denied' on every login). Without it each new instance starts from the template, and an old data
        directory of the same name is moved aside to orphans/ too (`_start`)."""
        if self.records_path.exists():
            orphans = private_dir(self.data_root / "orphans")
            target = orphans / f"{RECORDS_FILE}-{time.strftime('%Y%m%dT%H%M%S')}-without-control-plane"
            log.warning("no saved control plane: moving %s aside to %s", self.records_path, target)
            self.records_path.rename(target)

    def _save_records(self) -> None:
        """Write what a restart needs (atomically, owner-only); a failed write is logged and retried next pass."""
        data = {
            "servers": self.records,
            "bootstrapped": sorted(self.bootstrapped),
            "next_server_id": self.next_server_id,
        }
        try:
            private_dir(self.data_root)
            write_durably(self.records_path, json.dumps(data, indent=1, sort_keys=True).encode())
        except OSError as exc:
            log.error("could not save %s: %s (will retry)", self.records_path, exc)

    def engine(self, rds_engine: str) -> DatabaseEngine:
        """The data-plane engine for a cluster `Engine` (one instance per engine: one template, one binary path)."""
        cls = engine_class(rds_engine)
        with self._engines_lock:
            if cls not in self._engines:
                self._engines[cls] = cls()
            return self._engines[cls]

    # ---- reading the control plane -------------------------------------------------------------

    def observe(self) -> tuple[dict[str, ClusterView], dict[str, InstanceView], dict[str, Any]]:
        clusters: dict[str, ClusterView] = {}
        instances: dict[str, InstanceView] = {}
        client_of: dict[str, Any] = {}
        for rds in self.rds_clients():
            for page in rds.get_paginator("describe_db_clusters").paginate():
                for c in page["DBClusters"]:
                    engine = self._engine_or_none(c)
                    if engine is None:
                        continue
                    members = c.get("DBClusterMembers", [])
                    writer = next((m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")), None)
                    view = ClusterView(
                        identifier=c["DBClusterIdentifier"],
                        engine=str(c["Engine"]),
                        endpoint=c.get("Endpoint", ""),
                        reader_endpoint=c.get("ReaderEndpoint", ""),
                        port=int(c.get("Port") or engine.default_port),
                        master_username=c.get("MasterUsername") or "admin",
                        database=c.get("DatabaseName"),
                        secret_arn=(c.get("MasterUserSecret") or {}).get("SecretArn"),
                        writer=writer,
                        members=[m["DBInstanceIdentifier"] for m in members],
                        require_tls=requires_tls(rds, c),
                    )
                    clusters[view.identifier] = view
                    client_of[view.identifier] = rds
                    self.region_of[view.identifier] = str(getattr(getattr(rds, "meta", None), "region_name", ""))
            for page in rds.get_paginator("describe_db_instances").paginate():
                for i in page["DBInstances"]:
                    cluster = i.get("DBClusterIdentifier")
                    if cluster not in clusters or i.get("DBInstanceStatus") == "deleting":
                        continue
                    instances[i["DBInstanceIdentifier"]] = InstanceView(
                        identifier=i["DBInstanceIdentifier"],
                        cluster=cluster,
                        endpoint=(i.get("Endpoint") or {}).get("Address", ""),
                        status=str(i.get("DBInstanceStatus") or "available"),
                    )
        return clusters, instances, client_of

    def _engine_or_none(self, cluster: dict[str, Any]) -> DatabaseEngine | None:
        """The cluster's data-plane engine, or None (logged once) when the sandbox runs none for its Engine."""
        try:
            return self.engine(str(cluster.get("Engine", "")))
        except SandboxError as exc:
            if cluster["DBClusterIdentifier"] not in self._unsupported:
                self._unsupported.add(cluster["DBClusterIdentifier"])
                log.warning("cluster %s gets no databases: %s", cluster["DBClusterIdentifier"], exc.message)
            return None

    # ---- acting on the data plane --------------------------------------------------------------

    def reconcile(self) -> bool:
        """One pass; returns True when anything changed."""
        with self.lock:
            clusters, instances, client_of = self.observe()
            changed = False
            gone_names = [name for name in self.servers if name not in instances]
            _in_parallel([self.servers[name].remove for name in gone_names])
            for gone in gone_names:
                log.info("instance %s deleted: stopped its server and deleted its data", gone)
                for kept in (self.records, self.servers, self.roles, self.errors, self.cluster_of, self.endpoints,
                             self.engine_of, self.catch_up_to):  # fmt: skip
                    kept.pop(gone, None)
                changed = True
            for cluster in [c for c in {*self.writers, *self.bootstrapped} if c not in clusters]:
                self.writers.pop(cluster, None)
                self.bootstrapped.discard(cluster)
                self.master_passwords.pop(cluster, None)
                self._acks.pop(cluster, None)
                changed = True
            new = [view for name, view in instances.items() if name not in self.servers]
            if new:
                launched = self._launch(new, clusters)
                # A writer and its reader are created a moment apart: one created while these were launched starts
                # with them, not a whole server start (and the writer's bootstrap) later, in the next pass.
                later = self._observe_again()
                if later is not None:
                    clusters, instances, client_of = later
                    launched += self._launch([v for n, v in instances.items() if n not in self.servers], clusters)
                with ThreadPoolExecutor(max_workers=max(1, len(launched))) as pool:
                    list(pool.map(self._wait_ready, launched))
                changed = True
            changed |= self._reboot_requested(instances, clusters)
            for view in clusters.values():
                try:
                    changed |= self._converge_cluster(view, instances, client_of[view.identifier])
                except Exception:  # one broken cluster must not stall the others
                    self.failures.exception("could not converge cluster %s", view.identifier)
            self._observed = instances  # statuses are published after the state file has the endpoints
            if self.clusters != clusters:
                changed = True
            self.clusters = clusters
            changed |= self._check_replicas(readers_too=True)
            if changed:
                self._save_records()
            return changed

    def prepare(self, rds_engine: str = DEFAULT_ENGINE) -> None:
        """Make the engine's template (once per labkit home) before the first instance needs it."""
        self.engine(rds_engine).prepare(self.data_root, self.admin_password, self.repl_password)

    def _observe_again(self) -> tuple[dict[str, ClusterView], dict[str, InstanceView], dict[str, Any]] | None:
        """The control plane read again in the middle of a pass; None when it cannot be read now (the pass goes on
        with what it saw first)."""
        try:
            return self.observe()
        except Exception as exc:
            log.warning("could not look for instances created meanwhile: %s", exc)
            return None

    def _launch(self, views: list[InstanceView], clusters: dict[str, ClusterView]) -> list[InstanceView]:
        """Start the servers of new instances (returns at once; the caller waits for them): the ones started."""
        started = []
        for view in views:
            rds_engine = clusters[view.cluster].engine
            try:
                self.prepare(rds_engine)
            except SandboxError as exc:  # its engine's programs are missing: `failed`, with the fix; tried again
                self._cannot_start(view, exc)
                continue
            started.append(view)
            datadir = self.data_root / "instances" / view.identifier
            record = self.records.get(view.identifier)
            if record is None:  # a new instance: its own server id, and no data but the template's
                _move_aside(datadir, self.data_root / "orphans")
                record = {"server_id": self.next_server_id, "port": 0}
                self.next_server_id += 1
            port = record["port"] if record["port"] and not port_in_use(record["port"]) else free_port()
            server = self.engine(rds_engine).server(
                view.identifier, datadir, port, record["server_id"], self.admin_password, self.repl_password,
            )  # fmt: skip
            cluster = clusters[view.cluster]  # its certificate names the endpoints, as an RDS certificate does
            server.tls_names = endpoint_names(cluster.endpoint, cluster.reader_endpoint, view.endpoint)
            server.secure_transport = cluster.require_tls
            self.records[view.identifier] = {"server_id": record["server_id"], "port": port}
            log.info("starting the %s server of %s on port %d", rds_engine, view.identifier, server.port)
            server.start()
            self.servers[view.identifier] = server
            self.engine_of[view.identifier] = rds_engine
            self.cluster_of[view.identifier] = view.cluster
            if view.status == "available":  # restored after a restart: not answering until its server is up
                self._set_status(view.identifier, "starting")
            self.endpoints[view.identifier] = view.endpoint
            self.roles[view.identifier] = "starting"
        return started

    def _cannot_start(self, view: InstanceView, exc: SandboxError) -> None:
        """An instance whose engine cannot run here: `failed`, the reason and its fix in the state file's errors
        (logged once); the next pass tries again, so installing the engine is enough."""
        reason = f"{exc.message}; fix: {exc.fix}" if exc.fix else exc.message
        if self.errors.get(view.identifier) != reason:
            log.error("instance %s cannot start: %s", view.identifier, reason)
        self.errors[view.identifier] = reason
        self.roles[view.identifier] = "failed"
        self.cluster_of[view.identifier] = view.cluster

    def _wait_ready(self, view: InstanceView) -> None:
        try:
            self.servers[view.identifier].wait_ready()
        except Exception as exc:  # recorded in the state file; the instance is left out of its cluster
            log.error("instance %s failed to start: %s", view.identifier, exc)
            self.roles[view.identifier] = "failed"
            self.errors[view.identifier] = str(exc)

    def _converge_cluster(self, cluster: ClusterView, instances: dict[str, InstanceView], rds: Any) -> bool:
        if cluster.identifier not in self.bootstrapped and cluster.identifier not in self.master_passwords:
            # as soon as the cluster is seen, not when its writer is up: its secret holds the cluster's own
            # password before any client (the lab's app, labkit.sql) can read and keep it
            self.master_passwords[cluster.identifier] = self.master_password(rds, cluster)
        members = [m for m in cluster.members if m in self.servers and m in instances and self.roles.get(m) != "failed"]
        self._require_tls(cluster, members)
        writer = cluster.writer if cluster.writer in members else None
        if writer is None:
            return False
        changed = False
        previous = self.writers.get(cluster.identifier)
        if cluster.identifier not in self.bootstrapped:
            password = self.master_passwords[cluster.identifier]
            self.servers[writer].bootstrap_writer(
                cluster.master_username, password, cluster.database, self.repl_password
            )
            self.bootstrapped.add(cluster.identifier)
            self.master_passwords.pop(cluster.identifier, None)
            changed = True
        elif previous is None:  # a restarted daemon: the writer's server starts read-only, as every server does
            log.info("resuming %s as the writer of %s", writer, cluster.identifier)
            self.servers[writer].promote(catch_up_to=None)
            changed = True
        elif previous != writer:  # FailoverDBCluster
            name = cluster.identifier
            self._event(name, "db-cluster", name, f"Started cross AZ failover to DB instance: {writer}", ["failover"])
            if self._failover(name, previous, writer):
                self._event(name, "db-cluster", name, f"Completed failover to DB instance: {writer}", ["failover"])
            else:
                self._event(name, "db-cluster", name, f"Failover to DB instance {writer} failed", ["failover"])
                writer = previous  # the control plane is put back: the old writer keeps the cluster
                if self.model is not None:
                    self.model.fail_over(self.region_of.get(name, ""), name, writer)
            changed = True
        self.writers[cluster.identifier] = writer
        self.roles[writer] = WRITER
        for member in members:
            if member == writer:
                continue
            if (
                self.roles.get(member) == "rebooting"
                or member in self.pending_restarts
                or self.servers[member].exited()
            ):
                continue  # restarted first (check_health, restart_pending), then pointed at the writer
            if (
                self.roles.get(member) not in (READER, CATCHING_UP)
                or self.servers[member].replication_source_port() != self.servers[writer].port
            ):
                self._point(member, writer)
                changed = True
        return changed  # the writer's replica acknowledgements are settled at the end of the pass

    def _require_tls(self, cluster: ClusterView, members: list[str]) -> None:
        """Each running server follows its cluster parameter group's TLS requirement (dynamic on Aurora: no
        reboot); a server that is down gets it from its next start."""
        for member in members:
            server = self.servers[member]
            if server.secure_transport == cluster.require_tls or server.exited() or server.pid is None:
                continue
            try:
                server.require_secure_transport(cluster.require_tls)
            except Exception:
                self.failures.exception("could not set whether %s requires TLS", member)
                continue
            log.info("%s %s", member, "requires TLS" if cluster.require_tls else "accepts clients without TLS")

    def _point(self, member: str, writer: str) -> None:
        """Make `member` a replica of `writer`; it joins the reader endpoint once it holds what the writer holds now."""
        log.info("pointing %s at writer %s", member, writer)
        self.servers[member].replicate_from(self.servers[writer].port, self.repl_password)
        self.catch_up_to[member] = self.servers[writer].position()
        self.roles[member] = CATCHING_UP

    # ---- the master password, rotated as RDS rotates it -----------------------------------------

    def cluster_of_secret(self, secret_arn: str) -> str | None:
        """The cluster whose managed master secret `secret_arn` is (None for any other secret)."""
        with self.lock:
            return next((c.identifier for c in self.clusters.values() if c.secret_arn == secret_arn), None)

    def set_master_password(self, cluster: str, password: str) -> None:
        """Change the cluster's master password on its writer (the readers get it through replication)."""
        with self.lock:
            writer = self.writers.get(cluster)
            view = self.clusters.get(cluster)
            if writer is None or view is None or writer not in self.servers:
                raise SandboxError(
                    f"cluster {cluster} has no running writer", field=cluster, fix="wait until it is available"
                )
            self.servers[writer].set_password(view.master_username, password)

    # ---- health, as Aurora's control plane keeps it ---------------------------------------------

    def check_health(self) -> bool:
        """Notice dead servers (no API call: each process is asked whether it exited). A dead reader is
        restarted; a dead writer is restarted on its data and failed over to a reader that applied all of it, as
        Aurora does. Replicas catching up join the reader endpoint once they have; a broken one is rebuilt.
        Returns True when anything changed."""
        with self.lock:
            dead = [
                name
                for name, server in self.servers.items()
                if server.exited() and self.roles.get(name) != "failed" and name not in self.pending_restarts
            ]
            for name in dead:
                if self.writers.get(self.cluster_of.get(name, "")) != name:
                    self.roles[name] = "rebooting"  # no longer a replica the writer may wait for
            self._require_acks_everywhere()
            for name in dead:
                cluster = self.cluster_of.get(name, "")
                try:
                    if self.writers.get(cluster) == name:
                        self._writer_died(cluster, name)
                    else:
                        self._restart(name, f"DB instance {name} restarted after its database process exited")
                except Exception:
                    self.failures.exception("could not recover %s", name)
            changed = self._check_replicas(readers_too=time.monotonic() - self._readers_checked >= READER_CHECK_SECONDS)
            return bool(dead) or changed

    def settled(self) -> bool:
        """True when no server is starting, no replica catching up and no instance waiting to be `available`: the
        daemon's own background work may take a core now without slowing a learner's first query."""
        roles = list(self.roles.values())
        statuses = [view.status for view in list(self._observed.values())]
        return not any(role in ("starting", CATCHING_UP) for role in roles) and not any(
            status in ("creating", "starting", "rebooting") for status in statuses
        )

    def catching_up(self) -> bool:
        """True while a replica waits to join its reader endpoint (the daemon then checks it more often)."""
        return CATCHING_UP in self.roles.values()

    def _check_replicas(self, readers_too: bool) -> bool:
        """Catching-up replicas that hold what the writer had when they were pointed become readers; a replica
        that can never continue (BROKEN) is rebuilt, one whose replication stopped is pointed again. Readers are
        checked too when `readers_too` (every few seconds: a query each). Then each writer requires a replica's
        acknowledgement exactly while its cluster has a reader."""
        if readers_too:
            self._readers_checked = time.monotonic()
        changed = False
        for name, role in list(self.roles.items()):
            if role != CATCHING_UP and not (role == READER and readers_too):
                continue
            server = self.servers.get(name)
            if server is None or server.exited():
                continue  # check_health restarts it
            try:
                state = server.replication_state()
                if state == BROKEN:
                    self._rebuild(name)
                elif state == STOPPED:
                    self.roles[name] = "restarted"  # converge points it at the writer again
                elif role == CATCHING_UP and state == REPLICATING and server.holds(self.catch_up_to.get(name, "")):
                    log.info("%s caught up with its writer: in the reader endpoint", name)
                    self.roles[name] = READER
                else:
                    continue
            except Exception:  # not answering: a dead one is restarted by check_health
                self.failures.exception("could not check the replication of %s", name)
                continue
            changed = True
        self._require_acks_everywhere()
        return changed

    def _require_acks_everywhere(self) -> None:
        for cluster in list(self.writers):
            self._require_acks(cluster)

    def _require_acks(self, cluster: str) -> None:
        """The writer acknowledges a commit only once a replica has it, while its cluster has a reader (with none,
        a commit must not wait for a replica that is not coming)."""
        writer = self.writers.get(cluster)
        server = self.servers.get(writer or "")
        if writer is None or server is None or server.exited() or self.roles.get(writer) != WRITER:
            return
        required = any(
            self.roles.get(name) == READER for name, of in self.cluster_of.items() if of == cluster and name != writer
        )
        wanted = (writer, server.pid, required)
        if self._acks.get(cluster) == wanted:
            return
        try:
            server.require_replica_ack(required)
        except Exception:
            self.failures.exception("could not set whether %s waits for a replica", writer)
            return
        log.info("writer %s %s", writer, "waits for a replica's acknowledgement" if required else "commits alone")
        self._acks[cluster] = wanted

    def restart_pending(self) -> bool:
        """Restart the old writers of failovers, once the state file points clients at the new writers (a
        restart takes a second or two; clients should not wait for it)."""
        with self.lock:
            pending = {name: message for name, message in self.pending_restarts.items() if name in self.servers}
            self.pending_restarts.clear()
            for name, message in pending.items():
                try:
                    self._restart(name, message)
                except Exception:
                    self.failures.exception("could not restart %s", name)
            return bool(pending)

    def _writer_died(self, cluster: str, writer: str) -> None:
        """Restart the dead writer on its data (taking no writes): it holds every commit it acknowledged. Then a
        reader applies all of it and is promoted; if none can, the old writer takes writes again (converge)."""
        log.warning("the writer %s of %s is dead", writer, cluster)
        target = self._failover_target(cluster, exclude=writer)
        self._restart(writer, f"DB instance {writer} restarted after its database process exited")
        if target is None:  # no healthy reader: Aurora restarts the writer in place
            return
        old, new = self.servers[writer], self.servers[target]
        self._event(cluster, "db-cluster", cluster, f"Started cross AZ failover to DB instance: {target}", ["failover"])
        try:
            if self.roles.get(writer) == "failed":  # its data cannot be read: all the replica received must do
                new.promote(catch_up_to=new.caught_up_position(), timeout=CATCH_UP_SECONDS)
            else:
                committed = old.position()
                if new.replication_state() == BROKEN:
                    raise SandboxError(f"{target} cannot replicate", field=target, fix="it is rebuilt")
                if new.replication_source_port() != old.port:
                    new.replicate_from(old.port, self.repl_password)
                new.promote(catch_up_to=committed, timeout=CATCH_UP_SECONDS)
        except Exception as exc:
            log.error("failover of %s to %s abandoned (%s): %s takes writes again", cluster, target, exc, writer)
            self._event(cluster, "db-cluster", cluster, f"Failover to DB instance {target} failed", ["failover"])
            return
        if self.roles.get(writer) != "failed":
            self.roles[writer] = FENCED  # converge points it at the new writer
        self.writers[cluster] = target
        self.roles[target] = WRITER
        if self.model is not None:
            self.model.fail_over(self.region_of.get(cluster, ""), cluster, target)
        self._event(cluster, "db-cluster", cluster, f"Completed failover to DB instance: {target}", ["failover"])

    def _failover_target(self, cluster: str, exclude: str) -> str | None:
        """A running replica of the cluster, readers first (a catching-up one may still apply all it needs)."""
        replicas = [
            name for name, of in self.cluster_of.items()
            if of == cluster and name != exclude and self.roles.get(name) in (READER, CATCHING_UP)
            and not self.servers[name].exited()
        ]  # fmt: skip
        return min(replicas, key=lambda name: (self.roles.get(name) != READER, name)) if replicas else None

    def _restart(self, name: str, message: str) -> None:
        """Start a server again on its data (`rebooting` meanwhile, out of the reader endpoint). Its role is
        settled by the next converge: the writer accepts writes again, a reader replicates from the writer."""
        cluster = self.cluster_of.get(name, "")
        self._set_status(name, "rebooting")
        was = self.roles.get(name)
        self.roles[name] = "rebooting"
        if self.writers.get(cluster) == name:
            self.writers.pop(cluster)  # converge promotes it again (a server always starts read-only)
        server = self.servers[name]
        server.stop()
        if self._started(name, server):
            self.roles[name] = "restarted" if was != WRITER else "restarted-writer"
            self._event(cluster, "db-instance", name, message, ["availability"])

    def _started(self, name: str, server: DatabaseServer) -> bool:
        """Start `server` and wait until it answers; when it cannot, the instance is `failed`, with the reason."""
        server.start()
        try:
            server.wait_ready()
        except Exception as exc:
            log.error("instance %s failed to start: %s", name, exc)
            self.roles[name] = "failed"
            self.errors[name] = str(exc)
            self._set_status(name, "failed")
            return False
        return True

    def _rebuild(self, name: str) -> None:
        """A replica that can never replicate again (its history diverged from the writer's) starts over from
        the engine's template and replicates the writer's whole history; its old data is kept under
        `orphans/`, never deleted. It joins as a new server, with a server id of its own, as a replacement host
        would (nothing it receives can then be mistaken for what it wrote before)."""
        cluster = self.cluster_of.get(name, "")
        old = self.servers[name]
        self._set_status(name, "rebooting")
        self.roles[name] = "rebooting"
        old.stop()
        kept = _move_aside(old.datadir, self.data_root / "orphans", "a replica that could not replicate")
        server_id = self.next_server_id
        self.next_server_id += 1
        rds_engine = self.engine_of.get(name, DEFAULT_ENGINE)
        server = self.engine(rds_engine).server(
            name, old.datadir, old.port, server_id, self.admin_password, self.repl_password
        )
        server.tls_names, server.secure_transport = old.tls_names, old.secure_transport
        self.servers[name] = server
        self.records[name] = {"server_id": server_id, "port": old.port}
        self._save_records()
        if not self._started(name, server):
            return
        self.roles[name] = "restarted"  # converge points it at the writer
        self._event(
            cluster, "db-instance", name,
            f"DB instance {name} restarted: it could not replicate from the writer, so it was rebuilt from it "
            f"(its previous data is kept in {kept})",
            ["availability"],
        )  # fmt: skip

    def _reboot_requested(self, instances: dict[str, InstanceView], clusters: dict[str, ClusterView]) -> bool:
        """RebootDBInstance: restart its server; with ForceFailover on the writer, fail over to a reader first, as
        Aurora does."""
        changed = False
        for name, view in instances.items():
            if self.model is None or name not in self.servers or self.roles.get(name) == "rebooting":
                continue
            cluster = view.cluster
            region = self.region_of.get(cluster, "")
            forced = self.model.take_reboot(region, name)
            if forced is None:  # not asked (a `rebooting` status of the daemon's own restart says nothing)
                continue
            target = self._failover_target(cluster, exclude=name) if forced else None
            if forced and self.writers.get(cluster) == name and target is not None:
                self._event(
                    cluster, "db-cluster", cluster, f"Started cross AZ failover to DB instance: {target}", ["failover"]
                )
                if self._failover(cluster, name, target):
                    self.writers[cluster] = target
                    self.roles[target] = WRITER
                    self.model.fail_over(region, cluster, target)
                    clusters[cluster].writer = target  # what this pass observed is now out of date
                    self._event(
                        cluster, "db-cluster", cluster, f"Completed failover to DB instance: {target}", ["failover"]
                    )
            if self.writers.get(cluster) == target and target is not None:
                self.pending_restarts[name] = f"DB instance {name} restarted"  # once the endpoints moved
            else:
                self._restart(name, f"DB instance {name} restarted")
            changed = True
        return changed

    def publish_states(self) -> bool:
        """`available` once a server answers in its role (`creating` and `rebooting` until then).

        Called after the state file (the endpoint map) is written: when a waiter sees `available`, a client can
        resolve the endpoint and connect, as on AWS. Returns True when a status changed.
        """
        changed = False
        with self.lock:
            for name, view in self._observed.items():
                before = view.status
                self._publish(name, view)
                changed |= view.status != before
        return changed

    def _publish(self, name: str, view: InstanceView) -> None:
        role = self.roles.get(name)  # a reader has caught up with its writer (a catching-up one has not)
        if role in (WRITER, READER) and view.status in ("creating", "rebooting", "starting"):
            self._set_status(name, "available")
            view.status = "available"
        elif role == "failed" and view.status != "failed":
            self._set_status(name, "failed")
            view.status = "failed"

    def _set_status(self, name: str, status: str) -> None:
        if self.model is not None:
            self.model.set_status(self.region_of.get(self.cluster_of.get(name, ""), ""), name, status)

    def _event(self, cluster: str, source_type: str, source: str, message: str, categories: list[str]) -> None:
        if self.model is not None:
            self.model.add_event(self.region_of.get(cluster, ""), source_type, source, message, categories)

    def _failover(self, cluster: str, old: str | None, new: str) -> bool:
        """Aurora's failover, for real: fence the old writer, let the new one catch up to it, promote it. When the
        new one cannot catch up, the old one takes writes again and this returns False."""
        log.info("failover of %s: %s -> %s", cluster, old, new)
        position = None
        if old and old in self.servers and not self.servers[old].exited():
            position = self.servers[old].fence()
            self.roles[old] = FENCED
        try:
            self.servers[new].promote(catch_up_to=position, timeout=CATCH_UP_SECONDS)
        except Exception as exc:
            log.error("failover of %s to %s abandoned: %s", cluster, new, exc)
            if old and position is not None:
                self.servers[old].promote(catch_up_to=None)
                self.roles[old] = WRITER
            return False
        return True

    def shutdown(self) -> None:
        """Stop every server cleanly, keeping its data (the next daemon starts it again)."""
        with self.lock:
            _in_parallel([server.stop for server in self.servers.values()])
            self._save_records()
            self.servers.clear()
            self.roles.clear()
            with self._engines_lock:
                for engine in self._engines.values():
                    engine.release(self.data_root)

    # ---- what the state file records -----------------------------------------------------------

    def snapshot(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Instances and clusters as recorded in the state file (the endpoint map's source)."""
        with self.lock:
            instances = {
                name: {
                    "cluster": self.cluster_of.get(name),
                    "role": self.roles.get(name, "starting"),
                    "endpoint": self.endpoints.get(name, ""),
                    "port": server.port,
                    "pid": server.pid,
                    "server_id": server.server_id,
                    "status": _status(self.roles.get(name)),
                    "error": self.errors.get(name),
                }
                for name, server in self.servers.items()
            }
            clusters = {
                name: {
                    "endpoint": view.endpoint,
                    "reader_endpoint": view.reader_endpoint,
                    "port": view.port,
                    "writer": self.writers.get(name),
                    "readers": sorted(m for m in view.members if self.roles.get(m) == READER),
                    "members": sorted(view.members),
                    "database": view.database,
                    "master_username": view.master_username,
                    **self.moves.follow(name, self.writers.get(name)),  # the old writer, for some seconds
                }
                for name, view in self.clusters.items()
            }
            self.moves.forget(set(self.clusters))
        return instances, clusters


def requires_tls(rds: Any, cluster: dict[str, Any]) -> bool:
    """Whether the cluster's parameter group sets its engine's TLS parameter to the value that requires TLS
    (labkit.engines: require_secure_transport=ON, rds.force_ssl=1). A default group (`default.*`) never does, as on
    Aurora; a group the control plane no longer has requires nothing."""
    engine = described(cluster.get("Engine"))
    group = str(cluster.get("DBClusterParameterGroup") or "")
    if engine is None or not group or group.startswith("default."):
        return False
    try:
        pages = rds.get_paginator("describe_db_cluster_parameters").paginate(DBClusterParameterGroupName=group)
        parameters = [p for page in pages for p in page.get("Parameters", [])]
    except Exception:  # deleted since the describe: the cluster keeps the engine's default
        return False
    value = next(
        (str(p.get("ParameterValue", "")) for p in parameters if p.get("ParameterName") == engine.tls.parameter), ""
    )
    return value.strip().upper() == engine.tls.required.upper()


def _move_aside(datadir: Path, orphans: Path, what: str = "an unknown instance") -> Path | None:
    """Data no server may use any more is kept under `orphans/`, never deleted: an instance the control plane does
    not know (left by a sandbox whose control plane was lost), never served as a new instance's database, or a
    replica being rebuilt. Returns where it went (None when there was none)."""
    if not datadir.exists():
        return None
    orphans.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = orphans / f"{datadir.name}-{stamp}"
    for n in itertools.count(1):  # two in one second (a replica rebuilt twice) keep both
        if not target.exists():
            break
        target = orphans / f"{datadir.name}-{stamp}-{n}"
    log.warning("moving the data of %s, %s, aside to %s", what, datadir.name, target)
    datadir.rename(target)
    return target


def _in_parallel(actions: list[Callable[[], None]]) -> None:
    if actions:
        with ThreadPoolExecutor(max_workers=len(actions)) as pool:
            for future in [pool.submit(action) for action in actions]:
                future.result()


def _status(role: str | None) -> str:
    if role in (WRITER, READER):
        return "available"
    return "failed" if role == "failed" else "configuring"


def new_password() -> str:
    """A strong generated password (32 URL-safe characters: no quote or backslash to escape anywhere)."""
    return secrets.token_urlsafe(24)


def managed_master_password(secrets_client: Any, secret_arn: str) -> str:
    """The cluster's master password, generated for it on first use and stored in its managed secret.

    CreateDBCluster puts a generated password in the secret before it answers (rotation.PasswordAtCreate), so the
    current value is used as it is (also after a daemon restart, a retried bootstrap, a learner's own rotation):
    the password never changes under a client that already read it. Only a cluster made by an older daemon still
    has moto's one fixed value at its first bootstrap: a strong password is generated for it here.
    """
    versions = secrets_client.describe_secret(SecretId=secret_arn).get("VersionIdsToStages") or {}
    value = json.loads(secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"])
    if len(versions) > 1:
        return str(value["password"])
    value["password"] = new_password()
    secrets_client.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(value))
    return str(value["password"])
