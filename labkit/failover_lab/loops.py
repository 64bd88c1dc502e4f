"""What runs where an application runs, inside the VPC: every strategy's loop on its own thread, a reader poller,
the wait until every strategy has recovered, and the recount of acknowledged writes on the writer.

Standard library only (with the strategies it is given), so the same code runs in the learner's kernel against
the sandbox and, on AWS, on the lab's instance (onhost.py), where only the VPC's DNS sees the endpoints move.
The failure itself is made elsewhere, through the RDS API (failures.py): here it is only a moment, `call_s`.

A reader poller reads, on a fresh connection to the reader endpoint every READ_INTERVAL s, which probes a reader
already holds: the first time a reader shows a write the new writer acknowledged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from labkit.errors import LabkitError
from labkit.failover_lab.app import App, Cluster

READ_INTERVAL = 0.2
SETTLE_WRITES = 10  # a strategy has recovered once its last 10 writes were acknowledged by the writer after
API_POLL_SECONDS = 2.0  # RDS allows 12 requests per second per account and region, shared by a class
PROBES_PER_STRATEGY = 10**8  # probe ids: run base (microseconds x 1000) + strategy's slot x 10^8 + attempt
BASELINE_TIMEOUT = 30.0


class Loops:
    """One failure's strategies, each writing on its own thread from `start()` to `end()`, on one clock."""

    def __init__(self, strategies: dict[str, Callable[[App], None]], order: list[str], delays: dict[str, float],
                 cluster: Cluster, engine: Any, secret: Any, resolver: Any, interval: float,
                 trust_store: str | None) -> None:  # fmt: skip
        self.strategies, self.order, self.delays, self.cluster = strategies, order, delays, cluster
        self.stop = threading.Event()
        self.clock_ns = time.perf_counter_ns()
        self.epoch = time.time() - (time.perf_counter_ns() - self.clock_ns) / 1e9  # this clock's 0, in wall time
        self.base = time.time_ns() // 1000 * 1000
        self.apps = {
            name: App(name, cluster, engine, secret, resolver, self.stop, self.clock_ns,
                      self.base + (slot + 1) * PROBES_PER_STRATEGY, interval, trust_store=trust_store)
            for slot, name in enumerate(sorted(order))
        }  # fmt: skip
        self.reader = App("reader", cluster, engine, secret, resolver, self.stop, self.clock_ns, 0,
                          trust_store=trust_store)  # fmt: skip
        self.seen: dict[int, tuple[float, str]] = {}  # probe -> (first seen on a reader, which reader)
        self.threads: list[threading.Thread] = []

    def seconds(self) -> float:
        return (time.perf_counter_ns() - self.clock_ns) / 1e9

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._strategy, args=(name,), daemon=True) for name in self.order]
        self.threads.append(threading.Thread(target=self._reader, daemon=True))
        for thread in self.threads:
            thread.start()

    def wait_baseline(self, baseline: float, timeout: float = BASELINE_TIMEOUT) -> None:
        """Until `baseline` s have passed and every strategy has had a write acknowledged."""
        deadline = time.monotonic() + timeout
        while not (self.seconds() >= baseline and all(self.wrote(app) for app in self.apps.values())):
            if time.monotonic() > deadline:
                failed = {name: next((s["error"] for s in reversed(app.samples) if s["error"]), None)
                          for name, app in self.apps.items()}  # fmt: skip
                raise LabkitError(f"the strategies did not all write during the baseline: {failed}", field="failover",
                                  fix="check labkit.sql('SELECT 1') works on the writer, then retry")  # fmt: skip
            time.sleep(0.05)

    @staticmethod
    def wrote(app: App) -> bool:
        return any(s["acknowledged"] for s in app.samples)

    def watch(self, writer: Callable[[], str | None], before: str, call_s: float, after: float) -> str:
        """Until every strategy recovered on the writer after the failure, or `after` s; returns the writer after.
        `writer()` asks the RDS API which instance is the writer (at most every API_POLL_SECONDS)."""
        current, asked = before, 0.0
        while self.seconds() - call_s < after:
            if time.monotonic() - asked >= API_POLL_SECONDS:
                current, asked = writer() or before, time.monotonic()
            if self.seconds() - call_s > 1.0 and all(
                recovered(app.samples, call_s, current) for app in self.apps.values()
            ):
                break
            self.stop.wait(0.1)
        return writer() or current

    def end(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def lost(self, writer: str) -> dict[str, Any]:
        """Every acknowledged probe looked for on the writer (its own endpoint: no DNS delay in the way)."""
        acked = [s["probe"] for app in self.apps.values() for s in app.samples if s["acknowledged"]]
        checker = App("check", self.cluster, self.reader.engine, self.reader.secret, self.reader.resolver,
                      threading.Event(), self.clock_ns, 0, trust_store=self.reader.trust_store)  # fmt: skip
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

    def samples(self) -> list[dict[str, Any]]:
        return [sample for app in self.apps.values() for sample in app.samples]

    def _strategy(self, name: str) -> None:
        app = self.apps[name]
        if self.stop.wait(self.delays[name]):
            return
        try:
            self.strategies[name](app)
        except Exception as exc:  # a strategy's own bug must not hang the run: it shows as its last sample
            app.samples.append({"strategy": name, "probe": -1, "sent_s": app.seconds(), "done_s": app.seconds(),
                                "acked_s": float("nan"), "acknowledged": False, "served_by": None,
                                "error_kind": "crashed", "error": f"{type(exc).__name__}: {exc}"[:200]})  # fmt: skip

    def _reader(self) -> None:
        """Every READ_INTERVAL s, a fresh connection to the reader endpoint: which probes does a reader hold?"""
        reader = self.reader
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


def recovered(samples: list[dict[str, Any]], call_s: float, writer: str) -> bool:
    """The strategy failed at least once after the call, and its last SETTLE_WRITES writes were acknowledged by
    `writer` after the call."""
    after = [s for s in samples if s["sent_s"] >= call_s]
    last = after[-SETTLE_WRITES:]
    return (any(not s["acknowledged"] for s in after) and len(last) == SETTLE_WRITES
            and all(s["acknowledged"] and s["served_by"] == writer for s in last))  # fmt: skip


def endpoint_moved(cluster: Cluster, writer: str | None, resolver: Any) -> bool:
    """Does the cluster endpoint resolve where the writer's own endpoint does (a failover's move is done)?"""
    if not writer:
        return False
    try:
        return resolver(cluster.endpoint, cluster.port) == resolver(cluster.instance_endpoints[writer], cluster.port)
    except (LabkitError, OSError):
        return False
