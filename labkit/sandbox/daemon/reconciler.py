"""Make the data plane match the control plane: one database server per Aurora DB instance, replicas following
the writer.

Runs in the daemon, on its main loop. The reconciler reads RDS state through the same public describe calls a
learner's code makes. It starts a server for each new instance, removes the server of each deleted one,
bootstraps a cluster's first writer (master user with a password generated for the cluster and stored in its
managed secret, initial database), points replicas at
the writer, and carries out a failover for real: fence the old writer, let the new one catch up, promote it,
re-point the rest. It drives servers only through the engine interface (engines/base.py), choosing the engine
by each cluster's `Engine`; a cluster of an engine the sandbox does not run gets no servers.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import SandboxError
from labkit.sandbox.engines.base import DEFAULT_ENGINE, DatabaseEngine, DatabaseServer, engine_class
from labkit.sandbox.processes import free_port

log = logging.getLogger("labkit.sandbox.daemon.reconciler")


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


@dataclass
class InstanceView:
    identifier: str
    cluster: str
    endpoint: str


class Reconciler:
    """Owns the database server processes; `reconcile()` is safe to call as often as you like."""

    def __init__(
        self,
        data_root: Path,
        admin_password: str,
        rds_clients: Callable[[], list[Any]],
        master_password: Callable[[Any, ClusterView], str],
        repl_password: str | None = None,
    ) -> None:
        self.data_root = data_root
        self.admin_password = admin_password
        self.repl_password = repl_password or new_password()  # never the admin's: its own account, its own secret
        self.rds_clients = rds_clients
        self.master_password = master_password
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
                    )
                    clusters[view.identifier] = view
                    client_of[view.identifier] = rds
            for page in rds.get_paginator("describe_db_instances").paginate():
                for i in page["DBInstances"]:
                    cluster = i.get("DBClusterIdentifier")
                    if cluster not in clusters or i.get("DBInstanceStatus") == "deleting":
                        continue
                    instances[i["DBInstanceIdentifier"]] = InstanceView(
                        identifier=i["DBInstanceIdentifier"],
                        cluster=cluster,
                        endpoint=(i.get("Endpoint") or {}).get("Address", ""),
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
                log.info("instance %s deleted: stopped its server", gone)
                self.servers.pop(gone)
                self.roles.pop(gone, None)
                self.errors.pop(gone, None)
                self.cluster_of.pop(gone, None)
                self.endpoints.pop(gone, None)
                changed = True
            for cluster in [c for c in self.writers if c not in clusters]:
                self.writers.pop(cluster, None)
                self.bootstrapped.discard(cluster)
                self.master_passwords.pop(cluster, None)
                changed = True
            new = [view for name, view in instances.items() if name not in self.servers]
            if new:
                self._start(new, clusters)
                changed = True
            for view in clusters.values():
                try:
                    changed |= self._converge_cluster(view, instances, client_of[view.identifier])
                except Exception:  # one broken cluster must not stall the others
                    log.exception("could not converge cluster %s", view.identifier)
            if self.clusters != clusters:
                changed = True
            self.clusters = clusters
            return changed

    def prepare(self, rds_engine: str = DEFAULT_ENGINE) -> None:
        """Make the engine's template (once per labkit home) before the first instance needs it."""
        self.engine(rds_engine).prepare(self.data_root, self.admin_password, self.repl_password)

    def _start(self, views: list[InstanceView], clusters: dict[str, ClusterView]) -> None:
        for view in views:
            rds_engine = clusters[view.cluster].engine
            self.prepare(rds_engine)
            server = self.engine(rds_engine).server(
                view.identifier, self.data_root / "instances" / view.identifier, free_port(),
                self.next_server_id, self.admin_password, self.repl_password,
            )  # fmt: skip
            self.next_server_id += 1
            log.info("starting the %s server of %s on port %d", rds_engine, view.identifier, server.port)
            server.start()
            self.servers[view.identifier] = server
            self.cluster_of[view.identifier] = view.cluster
            self.endpoints[view.identifier] = view.endpoint
            self.roles[view.identifier] = "starting"
        with ThreadPoolExecutor(max_workers=max(1, len(views))) as pool:
            list(pool.map(self._wait_ready, views))

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
        elif previous != writer:
            self._failover(cluster.identifier, previous, writer)
            changed = True
        self.writers[cluster.identifier] = writer
        self.roles[writer] = "writer"
        writer_port = self.servers[writer].port
        for member in members:
            if member == writer:
                continue
            if self.roles.get(member) != "reader" or self.servers[member].replication_source_port() != writer_port:
                log.info("pointing %s at writer %s", member, writer)
                self.servers[member].replicate_from(writer_port, self.repl_password)
                self.roles[member] = "reader"
                changed = True
        return changed

    def _failover(self, cluster: str, old: str | None, new: str) -> None:
        """Aurora's failover, for real: fence the old writer, let the new one catch up to it, promote it."""
        log.info("failover of %s: %s -> %s", cluster, old, new)
        position = None
        if old and old in self.servers:
            position = self.servers[old].fence()
            self.roles[old] = "fenced"
        self.servers[new].promote(catch_up_to=position)

    def shutdown(self) -> None:
        """Stop every server and delete its data."""
        with self.lock:
            _in_parallel([server.remove for server in self.servers.values()])
            self.servers.clear()
            self.roles.clear()

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
                    "readers": sorted(m for m in view.members if self.roles.get(m) == "reader"),
                    "members": sorted(view.members),
                    "database": view.database,
                    "master_username": view.master_username,
                }
                for name, view in self.clusters.items()
            }
        return instances, clusters


def _in_parallel(actions: list[Callable[[], None]]) -> None:
    if actions:
        with ThreadPoolExecutor(max_workers=len(actions)) as pool:
            for future in [pool.submit(action) for action in actions]:
                future.result()


def _status(role: str | None) -> str:
    if role in ("writer", "reader"):
        return "available"
    return "failed" if role == "failed" else "configuring"


def new_password() -> str:
    """A strong generated password (32 URL-safe characters: no quote or backslash to escape anywhere)."""
    return secrets.token_urlsafe(24)


def managed_master_password(secrets_client: Any, secret_arn: str) -> str:
    """The cluster's master password, generated for it on first use and stored in its managed secret.

    moto's managed secret holds the same fixed password for every cluster. On the first bootstrap of a cluster's
    writer the secret still has only the version moto made, so a strong password is generated and put as its new
    current value; afterwards (a daemon restart, a retried bootstrap, a learner's own rotation) the current value
    is used as it is, so the password never changes under a client that already read it.
    """
    versions = secrets_client.describe_secret(SecretId=secret_arn).get("VersionIdsToStages") or {}
    value = json.loads(secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"])
    if len(versions) > 1:
        return str(value["password"])
    value["password"] = new_password()
    secrets_client.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(value))
    return str(value["password"])
