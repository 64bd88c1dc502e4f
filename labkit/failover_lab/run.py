"""The same failure for every strategy: each strategy's loop on its own thread, all writing at once, while one
failure is made: a planned failover (FailoverDBCluster), a writer crash, or a reboot without failover.

The strategies start in a random order (a seeded shuffle per run, each a random fraction of the interval late),
so none always goes first. They run where an application runs (loops.py): in the sandbox, in this process, whose
connections reach the databases; on AWS, on the lab's EC2 instance, inside the VPC (remote.py says why there).
After the run every acknowledged write is looked for on the writer: a missing one is a lost write. Between runs
the lab waits until the cluster is whole again and its endpoint names the writer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from labkit.access.lookup import cluster_engine, lab_cluster
from labkit.access.sql import credentials
from labkit.aws.backend import Backend
from labkit.aws.tags import cluster_roles
from labkit.bench.connect import run_on_writer
from labkit.config import lab_and_backend
from labkit.engines import engine_of
from labkit.errors import ConfigError, LabkitError
from labkit.failover_lab import backoff, naive, pool, remote, topology, wrapper
from labkit.failover_lab.app import App, Cluster
from labkit.failover_lab.failures import FAILURES, make_failure
from labkit.failover_lab.loops import API_POLL_SECONDS, Loops, endpoint_moved
from labkit.failover_lab.report import FailoverLab
from labkit.lab.resources.database import DATABASE_NAME

STRATEGIES: dict[str, Callable[[App], None]] = {
    "naive": naive.run, "backoff": backoff.run, "pool": pool.run, "topology": topology.run, "wrapper": wrapper.run,
}  # fmt: skip
DEFAULT_STRATEGIES = ("naive", "backoff", "pool", "topology")  # the wrapper on request: PostgreSQL only, an extra


def failover_lab(
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
    failures: tuple[str, ...] = FAILURES,
    *,
    runs: int = 1,
    baseline: float = 1.0,
    after: float = 15.0,
    interval: float = 0.1,
    seed: int | None = None,
    config: Any | None = None,
    backend: Backend | None = None,
) -> FailoverLab:
    """Run every strategy against the same failures, `runs` times each; returns the samples and their measures.

    `after`: how long the strategies keep writing after a failure, at most (a run ends sooner once every
    strategy has recovered on the writer). The strategies connect straight to the endpoints, as an application
    inside the VPC does: in the sandbox from this process; on AWS on the lab's instance, their samples brought
    back through SSM Run Command (so `after` and `interval` are bounded by what its output can carry).
    `"wrapper"` (AWS's Advanced Python Wrapper) runs on request, on Aurora PostgreSQL in the sandbox, when the
    package is installed."""
    _check(strategies, failures, runs, after, interval)
    config, backend = lab_and_backend(config, backend)
    in_vpc = backend.reaches_private_endpoints  # else the strategies run on the lab's instance
    if "wrapper" in strategies and (why := wrapper.available(engine_of(config).name)):
        raise ConfigError(
            why, field="strategies", fix="leave out the wrapper strategy, or use an Aurora PostgreSQL lab"
        )
    if not in_vpc:
        remote.check_size(strategies, baseline, after, interval)
    if not cluster_roles(lab_cluster(config, backend))[1]:
        raise ConfigError("a failover needs a reader to promote", field="readers", fix="set readers=1 and apply")
    engine = cluster_engine(config, backend)
    secret = None
    if in_vpc:  # on AWS the instance reads the secret itself, and creates the table
        secret = credentials(config, backend)
        run_on_writer(engine.sql.bench_failover, config, backend, secret, "direct")
    shuffle = random.Random(seed)
    samples, reads, meta = [], [], []
    try:
        for number in range(1, runs + 1):
            for failure in failures:
                cluster = _whole_again(config, backend)
                order = list(strategies)
                shuffle.shuffle(order)
                delays = {name: shuffle.random() * interval for name in order}
                writer_before = cluster_roles(lab_cluster(config, backend))[0] or ""
                spec = {"order": order, "delays": delays, "writer_before": writer_before, "baseline": baseline,
                        "after": after, "interval": interval, "engine": engine.name, "region": backend.region}  # fmt: skip
                if in_vpc:
                    how, call_s, result = _in_this_process(failure, spec, cluster, engine, secret, config, backend)
                else:
                    how, call_s, result = remote.run_on_instance(failure, spec, cluster, config, backend)
                samples.append(pd.DataFrame([{"failure": failure, "run": number, **s} for s in result["samples"]]))
                reads.append(pd.DataFrame([{"failure": failure, "run": number, "probe": p, "seen_s": t, "reader": r}
                                           for p, (t, r) in result["seen"].items()],
                                          columns=["failure", "run", "probe", "seen_s", "reader"]))  # fmt: skip
                meta.append({"failure": failure, "run": number, "order": ", ".join(order), "call_s": call_s,
                             "how": how, "writer_before": writer_before, "writer_after": result["writer_after"],
                             "acknowledged": result["acknowledged"], "lost": result["lost"]})  # fmt: skip
    finally:
        if "wrapper" in strategies:
            wrapper.release_resources()
    return FailoverLab(pd.concat(samples, ignore_index=True), pd.concat(reads, ignore_index=True), pd.DataFrame(meta))


def _in_this_process(failure: str, spec: dict[str, Any], cluster: Cluster, engine: Any, secret: Any, config: Any,
                     backend: Backend) -> tuple[str, float, dict[str, Any]]:  # fmt: skip
    """One failure's run with the strategies on threads here (the sandbox: this machine reaches the databases)."""
    loops = Loops(STRATEGIES, spec["order"], spec["delays"], cluster, engine, secret, backend.resolve,
                  spec["interval"], backend.trust_store())  # fmt: skip
    loops.start()
    try:
        loops.wait_baseline(spec["baseline"])
        call_s = loops.seconds()
        how = make_failure(failure, cluster, spec["writer_before"], backend)
        writer_after = loops.watch(lambda: cluster_roles(lab_cluster(config, backend))[0], spec["writer_before"],
                                   call_s, spec["after"])  # fmt: skip
    finally:
        loops.end()
    return how, call_s, {"samples": loops.samples(), "seen": loops.seen, "writer_after": writer_after,
                         **loops.lost(writer_after)}  # fmt: skip


def _check(strategies: tuple[str, ...], failures: tuple[str, ...], runs: int, after: float, interval: float) -> None:
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ConfigError(
            f"unknown strategies {unknown}", field="strategies", fix=f"choose from {', '.join(STRATEGIES)}"
        )
    wrong = [f for f in failures if f not in FAILURES]
    if wrong or not failures:
        raise ConfigError(f"unknown failures {wrong}", field="failures", fix=f"choose from {', '.join(FAILURES)}")
    if not 1 <= runs <= 20:
        raise ConfigError(f"runs={runs!r}", field="runs", fix="run each failure 1 to 20 times")
    if not 3 <= after <= 300:
        raise ConfigError(f"after={after!r}", field="after", fix="keep writing 3 to 300 s after the failure")
    if not 0.02 <= interval <= 2:
        raise ConfigError(f"interval={interval!r}", field="interval", fix="write every 0.02 to 2 s (default 0.1)")


def _cluster(config: Any, backend: Backend) -> tuple[Cluster, dict[str, Any]]:
    described = lab_cluster(config, backend)
    rds = backend.client("rds")
    endpoints = {}
    for member in described["DBClusterMembers"]:
        name = member["DBInstanceIdentifier"]
        instance = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
        endpoints[name] = instance["Endpoint"]["Address"]
    cluster = Cluster(described["DBClusterIdentifier"], described["Endpoint"], described["ReaderEndpoint"],
                      int(described["Port"]), endpoints, DATABASE_NAME)  # fmt: skip
    return cluster, described


def _whole_again(config: Any, backend: Backend, timeout: float = 120.0) -> Cluster:
    """Wait until every instance is available and the cluster endpoint resolves to the writer (a failover's
    endpoint has moved); the API is asked at most every API_POLL_SECONDS."""
    deadline = time.monotonic() + timeout
    while True:
        cluster, described = _cluster(config, backend)
        writer, readers = cluster_roles(described)
        statuses = {
            i["DBInstanceStatus"]
            for i in backend.client("rds").describe_db_instances(
                Filters=[{"Name": "db-cluster-id", "Values": [described["DBClusterIdentifier"]]}]
            )["DBInstances"]
        }
        # on AWS the instance waits for the endpoint's DNS itself (onhost.py): only the VPC sees it
        moved = endpoint_moved(cluster, writer, backend.resolve) if backend.reaches_private_endpoints else bool(writer)
        if statuses == {"available"} and readers and moved:
            return cluster
        if time.monotonic() > deadline:
            raise LabkitError(
                f"the cluster was not whole again within {timeout:.0f} s (instances: {sorted(statuses)})",
                field="failover",
                fix="check labkit.endpoints() and the instances' status, then run the lab again",
            )
        time.sleep(API_POLL_SECONDS)
