"""The same failure for every strategy: each strategy's loop on its own thread, all writing at once, while one
failure is made: a planned failover (FailoverDBCluster), a writer crash, or a reboot without failover.

The strategies start in a random order (a seeded shuffle per run, each a random fraction of the interval late),
so none always goes first. A reader poller reads, on a fresh connection to the reader endpoint every
READ_INTERVAL s, which probes a reader already holds: the first time a reader shows a write the new writer
acknowledged. After the run every acknowledged write is looked for on the writer: a missing one is a lost write.
Between runs the lab waits until the cluster is whole again and its endpoint names the writer.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from labkit.access.lookup import cluster_engine, lab_cluster
from labkit.access.sql import credentials
from labkit.aws.backend import Backend
from labkit.aws.tags import cluster_roles
from labkit.bench.connect import choose_path, run_on_writer
from labkit.config import lab_and_backend
from labkit.engines import engine_of
from labkit.errors import ConfigError, LabkitError
from labkit.failover_lab import backoff, naive, pool, topology, wrapper
from labkit.failover_lab.app import App, Cluster
from labkit.failover_lab.report import FailoverLab

STRATEGIES: dict[str, Callable[[App], None]] = {
    "naive": naive.run, "backoff": backoff.run, "pool": pool.run, "topology": topology.run, "wrapper": wrapper.run,
}  # fmt: skip
DEFAULT_STRATEGIES = ("naive", "backoff", "pool", "topology")  # the wrapper on request: PostgreSQL only, an extra
FAILURES = ("planned", "crash", "reboot")
READ_INTERVAL = 0.2
SETTLE_WRITES = 10  # a strategy has recovered once its last 10 writes were acknowledged by the writer after
API_POLL_SECONDS = 2.0  # RDS allows 12 requests per second per account and region, shared by a class
PROBES_PER_STRATEGY = 10**8  # probe ids: run base (microseconds x 1000) + strategy's slot x 10^8 + attempt


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
    inside the VPC does: in the sandbox; on AWS they would run on the lab's instance (not offered yet).
    `"wrapper"` (AWS's Advanced Python Wrapper) runs on request, on Aurora PostgreSQL, when the package is installed."""
    _check(strategies, failures, runs, after, interval)
    config, backend = lab_and_backend(config, backend)
    if "wrapper" in strategies and (why := wrapper.available(engine_of(config).name)):
        raise ConfigError(
            why, field="strategies", fix="leave out the wrapper strategy, or use an Aurora PostgreSQL lab"
        )
    choose_path("direct", backend, "the failover lab")  # the strategies resolve and connect as the application
    if not cluster_roles(lab_cluster(config, backend))[1]:
        raise ConfigError("a failover needs a reader to promote", field="readers", fix="set readers=1 and apply")
    secret = credentials(config, backend)
    engine = cluster_engine(config, backend)
    run_on_writer(engine.sql.bench_failover, config, backend, secret, "direct")
    shuffle = random.Random(seed)
    samples, reads, meta = [], [], []
    try:
        for number in range(1, runs + 1):
            for failure in failures:
                cluster = _whole_again(config, backend)
                one = _Run(failure, number, list(strategies), cluster, engine, secret, backend, interval, shuffle)
                info = one.go(config, baseline, after)
                samples.append(one.samples())
                reads.append(one.reads())
                meta.append(info)
    finally:
        if "wrapper" in strategies:
            wrapper.release_resources()
    return FailoverLab(pd.concat(samples, ignore_index=True), pd.concat(reads, ignore_index=True), pd.DataFrame(meta))


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
                      int(described["Port"]), endpoints)  # fmt: skip
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
        try:
            moved = writer and backend.resolve(cluster.endpoint, cluster.port) == backend.resolve(
                cluster.instance_endpoints[writer], cluster.port
            )
        except LabkitError:
            moved = False
        if statuses == {"available"} and readers and moved:
            return cluster
        if time.monotonic() > deadline:
            raise LabkitError(
                f"the cluster was not whole again within {timeout:.0f} s (instances: {sorted(statuses)})",
                field="failover",
                fix="check labkit.endpoints() and the instances' status, then run the lab again",
            )
        time.sleep(API_POLL_SECONDS)


class _Run:
    """One failure, every strategy writing through it."""

    def __init__(self, failure: str, number: int, strategies: list[str], cluster: Cluster, engine: Any,
                 secret: Any, backend: Backend, interval: float, shuffle: random.Random) -> None:  # fmt: skip
        self.failure, self.number, self.cluster, self.engine, self.secret = failure, number, cluster, engine, secret
        self.backend = backend
        self.stop = threading.Event()
        self.clock_ns = time.perf_counter_ns()
        base = time.time_ns() // 1000 * 1000
        self.order = strategies[:]
        shuffle.shuffle(self.order)
        self.delays = {name: shuffle.random() * interval for name in self.order}
        self.trust_store = backend.trust_store()  # every strategy verifies the servers, as labkit's clients do
        self.apps = {
            name: App(name, cluster, engine, secret, backend.resolve, self.stop, self.clock_ns,
                      base + (slot + 1) * PROBES_PER_STRATEGY, interval, trust_store=self.trust_store)
            for slot, name in enumerate(sorted(strategies))
        }  # fmt: skip
        self.base = base
        self.seen: dict[int, tuple[float, str]] = {}  # probe -> (first seen on a reader, which reader)

    def seconds(self) -> float:
        return (time.perf_counter_ns() - self.clock_ns) / 1e9

    def go(self, config: Any, baseline: float, after: float) -> dict[str, Any]:
        writer_before = cluster_roles(lab_cluster(config, self.backend))[0] or ""
        threads = [threading.Thread(target=self._strategy, args=(name,), daemon=True) for name in self.order]
        threads.append(threading.Thread(target=self._reader, daemon=True))
        for thread in threads:
            thread.start()
        try:
            self._wait(lambda: self.seconds() >= baseline and all(
                any(s["acknowledged"] for s in app.samples) for app in self.apps.values()), 30.0, "baseline")  # fmt: skip
            call_s = self.seconds()
            how = self._fail(writer_before)
            writer_after = self._watch(config, writer_before, call_s, after)
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=10)
        lost = self._lost(writer_after)
        return {"failure": self.failure, "run": self.number, "order": ", ".join(self.order), "call_s": call_s,
                "how": how, "writer_before": writer_before, "writer_after": writer_after, **lost}  # fmt: skip

    def _strategy(self, name: str) -> None:
        app = self.apps[name]
        if self.stop.wait(self.delays[name]):
            return
        try:
            STRATEGIES[name](app)
        except Exception as exc:  # a strategy's own bug must not hang the run: it shows as its last sample
            app.samples.append({"strategy": name, "probe": -1, "sent_s": app.seconds(), "done_s": app.seconds(),
                                "acked_s": float("nan"), "acknowledged": False, "served_by": None,
                                "error_kind": "crashed", "error": f"{type(exc).__name__}: {exc}"[:200]})  # fmt: skip

    def _reader(self) -> None:
        """Every READ_INTERVAL s, a fresh connection to the reader endpoint: which probes does a reader hold?"""
        reader = App("reader", self.cluster, self.engine, self.secret, self.backend.resolve, self.stop,
                     self.clock_ns, 0, trust_store=self.trust_store)  # fmt: skip
        while not self.stop.wait(READ_INTERVAL):
            connection = None
            try:
                connection = reader.connect(reader.resolve(self.cluster.reader_endpoint))
                served_by, _ = reader.identity(connection)
                cursor = connection.cursor()
                cursor.execute("SELECT probe FROM bench_failover WHERE probe > %s", (self.base,))
                now = self.seconds()
                for (probe,) in cursor.fetchall():
                    self.seen.setdefault(int(probe), (now, served_by))
                cursor.close()
            except reader.errors:
                pass  # the reader endpoint is moving too: the next read tries again
            finally:
                reader.close(connection)

    def _fail(self, writer: str) -> str:
        rds = self.backend.client("rds")
        if self.failure == "planned":
            described = rds.describe_db_clusters(DBClusterIdentifier=self.cluster.identifier)["DBClusters"][0]
            target = next(m["DBInstanceIdentifier"] for m in described["DBClusterMembers"] if not m["IsClusterWriter"])
            rds.failover_db_cluster(DBClusterIdentifier=self.cluster.identifier, TargetDBInstanceIdentifier=target)
            return f"failover_db_cluster(TargetDBInstanceIdentifier={target})"
        if self.failure == "crash":
            return self.backend.crash_db_instance(writer)
        rds.reboot_db_instance(DBInstanceIdentifier=writer)
        return "reboot_db_instance (no failover)"

    def _watch(self, config: Any, before: str, call_s: float, after: float) -> str:
        """Until every strategy recovered on the writer after the failure, or `after` s; returns the writer after."""
        writer, asked = before, 0.0
        while self.seconds() - call_s < after:
            if time.monotonic() - asked >= API_POLL_SECONDS:
                writer, asked = cluster_roles(lab_cluster(config, self.backend))[0] or before, time.monotonic()
            if self.seconds() - call_s > 1.0 and all(
                _recovered(app.samples, call_s, writer) for app in self.apps.values()
            ):
                break
            self.stop.wait(0.1)
        return cluster_roles(lab_cluster(config, self.backend))[0] or writer

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                failed = {name: next((s["error"] for s in reversed(app.samples) if s["error"]), None)
                          for name, app in self.apps.items()}  # fmt: skip
                raise LabkitError(f"the strategies did not all write during the {what}: {failed}", field="failover",
                                  fix="check labkit.sql('SELECT 1') works on the writer, then retry")  # fmt: skip
            time.sleep(0.05)

    def _lost(self, writer: str) -> dict[str, Any]:
        """Every acknowledged probe looked for on the writer (its own endpoint: no DNS delay in the way)."""
        acked = [s["probe"] for app in self.apps.values() for s in app.samples if s["acknowledged"]]
        checker = App("check", self.cluster, self.engine, self.secret, self.backend.resolve, threading.Event(),
                      self.clock_ns, 0, trust_store=self.trust_store)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = checker.connect(checker.resolve(self.cluster.instance_endpoints[writer]))
                break
            except checker.errors:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT probe FROM bench_failover WHERE probe > %s", (self.base,))
            found = {int(row[0]) for row in cursor.fetchall()}
            cursor.close()
        finally:
            connection.close()
        return {"acknowledged": len(acked), "lost": sorted(set(acked) - found)}

    def samples(self) -> pd.DataFrame:
        rows = [{"failure": self.failure, "run": self.number, **s} for app in self.apps.values() for s in app.samples]
        return pd.DataFrame(rows)

    def reads(self) -> pd.DataFrame:
        rows = [{"failure": self.failure, "run": self.number, "probe": p, "seen_s": t, "reader": r}
                for p, (t, r) in self.seen.items()]  # fmt: skip
        return pd.DataFrame(rows, columns=["failure", "run", "probe", "seen_s", "reader"])


def _recovered(samples: list[dict[str, Any]], call_s: float, writer: str) -> bool:
    """The strategy failed at least once after the call, and its last SETTLE_WRITES writes were acknowledged by
    `writer` after the call."""
    after = [s for s in samples if s["sent_s"] >= call_s]
    last = after[-SETTLE_WRITES:]
    return (any(not s["acknowledged"] for s in after) and len(last) == SETTLE_WRITES
            and all(s["acknowledged"] and s["served_by"] == writer for s in last))  # fmt: skip
