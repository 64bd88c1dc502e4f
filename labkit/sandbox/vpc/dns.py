"""The sandbox's DNS: which local port an RDS endpoint name reaches, as Aurora's DNS would answer.

The cluster endpoint goes to the writer; the reader endpoint rotates over the replicas per new connection
(and reaches the writer when a cluster has no replicas, as on Aurora); an instance endpoint to that instance.
After a failover the cluster endpoint names the old writer a few seconds more (the state file says until when:
daemon/moves.py), and a stale answer is what DNS gives: that instance's port, whether or not its server answers.

Runs in the client (a kernel reaching a database directly), the session plugin and the app hosts; it reads the
state file the daemon writes, so it costs no API call.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from labkit.errors import SandboxError
from labkit.sandbox.state import SandboxState, require_running

UNKNOWN_HOST_WAIT = 3.0  # the reconciler records a new instance within about a second
_rotation = itertools.count()
_rotation_lock = threading.Lock()


def endpoint_map(state: SandboxState) -> dict[str, list[str]]:
    """Endpoint host name -> the DB instances behind it (in rotation order for a reader endpoint)."""
    mapping: dict[str, list[str]] = {}
    for name, cluster in state.clusters.items():
        writer = cluster.get("writer")
        readers = list(cluster.get("readers") or [])
        if cluster.get("endpoint") and (named := _not_yet_moved(cluster) or writer):
            mapping[cluster["endpoint"]] = [named]
        if cluster.get("reader_endpoint"):
            mapping[cluster["reader_endpoint"]] = readers or ([writer] if writer else [])
        del name
    for name, instance in state.instances.items():
        if instance.get("endpoint"):
            mapping[instance["endpoint"]] = [name]
    return mapping


def _not_yet_moved(cluster: dict[str, Any]) -> str | None:
    """The old writer the cluster endpoint still names after a failover, until its move time; else None."""
    old = cluster.get("endpoint_writer")
    return str(old) if old and time.time() < float(cluster.get("endpoint_moves_at") or 0) else None


def _stale(state: SandboxState, host: str) -> str | None:
    """The old writer when `host` is a cluster endpoint that has not moved yet (answered as it is, as DNS does)."""
    for cluster in state.clusters.values():
        if cluster.get("endpoint") == host and (old := _not_yet_moved(cluster)) and old in state.instances:
            return old
    return None


def _endpoint_port(state: SandboxState, instance: str) -> int:
    """The port the DB instance's endpoints report (its cluster's Port, as RDS sets per engine); 0 when unknown."""
    cluster = state.instances.get(instance, {}).get("cluster")
    return int(state.clusters.get(cluster or "", {}).get("port") or 0)


def _pick(instances: list[str]) -> str:
    with _rotation_lock:
        return instances[next(_rotation) % len(instances)]


def resolve(host: str, timeout: float = 30.0) -> tuple[str, int]:
    """The 127.0.0.1 port a new connection to `host` reaches; waits while the database is still starting."""
    _, port, _ = pick(host, timeout)
    return "127.0.0.1", port


def pick(host: str, timeout: float = 30.0) -> tuple[str, int, int]:
    """For a new connection to `host`: the DB instance that takes it, its local port, and the endpoint's port."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        state = require_running()
        old = _stale(state, host)
        if old is not None:  # a name not yet repointed: DNS answers the old address, up or not
            return old, int(state.instances[old]["port"]), _endpoint_port(state, old)
        targets = endpoint_map(state).get(host, [])
        if not targets:  # not (yet) a known endpoint: a typo should not hang for the full timeout
            deadline = min(deadline, started + UNKNOWN_HOST_WAIT)
        ready = [t for t in targets if _endpoint_port(state, t) and state.instances[t].get("status") == "available"]
        if ready:
            chosen = _pick(ready)
            return chosen, int(state.instances[chosen]["port"]), _endpoint_port(state, chosen)
        if time.monotonic() > deadline:
            known = sorted(endpoint_map(state))
            raise SandboxError(
                f"no running database answers for {host}",
                field="endpoint",
                fix="use an endpoint from describe_db_clusters / describe_db_instances"
                + (f"; known: {', '.join(known)}" if known else "; the sandbox has no DB instances yet"),
            )
        time.sleep(0.02)
