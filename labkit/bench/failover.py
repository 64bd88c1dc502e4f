"""A failover, watched from outside: probe the cluster endpoint every 100 ms while the writer changes.

Each probe is what an application does after a failover: a new connection to the cluster endpoint, a write
(autocommit) and a read of which instance answered. The report says how long writes were impossible, which
instance was the writer before and after, and proves that every write that was acknowledged is still there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pymysql

from labkit.access.dialects import AURORA_MYSQL
from labkit.access.lookup import lab_cluster
from labkit.access.sql import credentials
from labkit.aws.backend import Backend
from labkit.aws.tags import cluster_roles
from labkit.bench.connect import connection_point, run_on_writer
from labkit.config import lab_and_backend
from labkit.errors import ConfigError, LabkitError

PROBE_TABLE = """
    CREATE TABLE IF NOT EXISTS bench_failover (
        probe      BIGINT PRIMARY KEY,
        served_by  VARCHAR(64) NOT NULL,
        written_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    ) ENGINE=InnoDB"""


@dataclass
class FailoverReport:
    """The probes (one row each), the writer before and after, the downtime, and the durability check."""

    probes: pd.DataFrame
    writer_before: str
    writer_after: str
    failover_at_s: float
    acknowledged: int
    lost: list[int] = field(default_factory=list)

    @property
    def downtime_s(self) -> float:
        """From the first failed probe still running at the failover call to the first success after it
        (0 when no probe failed: any outage was shorter than the probe interval)."""
        after = self.probes[self.probes["done_s"] >= self.failover_at_s]
        failed = after[~after["ok"]]
        if failed.empty:
            return 0.0
        first_failure = failed["sent_s"].min()
        recovered = after[(after["ok"]) & (after["sent_s"] > first_failure)]
        end = recovered["done_s"].min() if len(recovered) else after["done_s"].max()
        return float(end - first_failure)

    def summary(self) -> pd.DataFrame:
        ok = self.probes["ok"]
        return pd.DataFrame(
            [
                {"measure": "writer before", "value": self.writer_before},
                {"measure": "writer after", "value": self.writer_after},
                {"measure": "probes", "value": len(self.probes)},
                {"measure": "failed probes", "value": int((~ok).sum())},
                {"measure": "write downtime (s)", "value": round(self.downtime_s, 2)},
                {"measure": "writes acknowledged", "value": self.acknowledged},
                {"measure": "acknowledged writes lost", "value": len(self.lost)},
            ]
        )

    def plot(self) -> Any:
        import matplotlib.pyplot as plt  # heavy dependency: loaded only when a plot is asked for

        figure, axes = plt.subplots(figsize=(8, 3))
        for (ok, served_by), group in self.probes.groupby(["ok", "served_by"], dropna=False, sort=False):
            label = f"ok, served by {served_by}" if ok else "failed"
            axes.plot(group["sent_s"], [1 if ok else 0] * len(group), "o" if ok else "x", ms=4, label=label)
        axes.axvline(self.failover_at_s, color="grey", linestyle="--", label="failover_db_cluster")
        axes.set_yticks([0, 1], ["failed", "ok"])
        axes.set_xlabel("seconds")
        axes.set_title(f"Probes of the cluster endpoint: {self.downtime_s:.1f} s without writes")
        axes.legend(loc="center right", fontsize="small")
        figure.tight_layout()
        plt.close(figure)
        return figure


class _Monitor(threading.Thread):
    def __init__(self, connect: Any, interval: float) -> None:
        super().__init__(name="failover-monitor", daemon=True)
        self.connect = connect
        self.interval = interval
        self.rows: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.start_ns = time.perf_counter_ns()
        self.base = time.time_ns() // 1000

    def run(self) -> None:
        index = 0
        while not self.stop.is_set():
            intended = self.start_ns + int(index * self.interval * 1e9)
            delay = (intended - time.perf_counter_ns()) / 1e9
            if delay > 0 and self.stop.wait(delay):
                break
            self.rows.append(self._probe(self.base + index))
            index += 1

    def _probe(self, probe: int) -> dict[str, Any]:
        sent = time.perf_counter_ns()
        row: dict[str, Any] = {"probe": probe, "ok": False, "acknowledged": False, "served_by": None, "error": None}
        try:
            connection = self.connect()
            try:
                with connection.cursor() as cursor:
                    served_by = _identity(cursor)
                    cursor.execute("INSERT INTO bench_failover (probe, served_by) VALUES (%s, %s)", (probe, served_by))
                    row["acknowledged"] = True  # autocommit: the INSERT returned, so it committed
                    cursor.execute("SELECT COUNT(*) FROM bench_failover WHERE probe = %s", (probe,))
                    row["ok"] = cursor.fetchone()[0] == 1
                    row["served_by"] = served_by
            finally:
                connection.close()
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"[:200]
        row["sent_s"] = (sent - self.start_ns) / 1e9
        row["done_s"] = (time.perf_counter_ns() - self.start_ns) / 1e9
        return row


def _identity(cursor: Any) -> str:
    """Which instance answered: the probe speaks PyMySQL, so it asks with the MySQL dialect's queries."""
    for query in AURORA_MYSQL.identity_queries:
        try:
            cursor.execute(query)
            return str(cursor.fetchone()[0])
        except pymysql.err.MySQLError:
            continue
    return "?"


def _writer(config: Any, backend: Backend) -> tuple[str, tuple[str, ...]]:
    writer, readers = cluster_roles(lab_cluster(config, backend))
    return writer or "", readers


def failover(
    *,
    interval: float = 0.1,
    baseline: float = 1.0,
    settle: float = 1.0,
    timeout: float = 120.0,
    path: str = "tunnel",
    config: Any | None = None,
    backend: Backend | None = None,
) -> FailoverReport:
    """Fail the cluster over to a reader while probing the cluster endpoint every `interval` s."""
    if not 0.01 <= interval <= 5:
        raise ConfigError(f"interval={interval!r}", field="interval", fix="probe every 0.01 to 5 s (default 0.1)")
    config, backend = lab_and_backend(config, backend)
    writer_before, readers = _writer(config, backend)
    if not readers:
        raise ConfigError("a failover needs a reader to promote", field="readers", fix="set readers=1 and apply")
    secret = credentials(config, backend)
    run_on_writer(PROBE_TABLE, config, backend, secret, path)
    with connection_point("writer", path, config, backend) as connect:
        monitor = _Monitor(lambda: _probe_connection(connect, secret), interval)
        monitor.start()
        time.sleep(baseline)
        failover_at = (time.perf_counter_ns() - monitor.start_ns) / 1e9
        cluster_id = lab_cluster(config, backend)["DBClusterIdentifier"]
        backend.client("rds").failover_db_cluster(DBClusterIdentifier=cluster_id, TargetDBInstanceIdentifier=readers[0])
        writer_after = _wait_for_new_writer(config, backend, writer_before, monitor, settle, timeout)
        monitor.stop.set()
        monitor.join()
        probes = pd.DataFrame(monitor.rows)
        acknowledged = [int(p) for p in probes.loc[probes["acknowledged"], "probe"]]
        check = connect(secret)
        try:
            lost = _missing(check, acknowledged)
        finally:
            check.close()
    return FailoverReport(probes, writer_before, writer_after, failover_at, len(acknowledged), lost)


def _probe_connection(connect: Any, secret: Any) -> Any:
    return connect(secret, timeout=2)  # a probe must not hang on a dead server


def _wait_for_new_writer(
    config: Any, backend: Backend, before: str, monitor: _Monitor, settle: float, timeout: float
) -> str:
    """Until the API names a new writer and probes have succeeded on it for `settle` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        after, _ = _writer(config, backend)
        recent = [r for r in monitor.rows if r["done_s"] >= monitor.rows[-1]["done_s"] - settle] if monitor.rows else []
        settled = recent and all(r["ok"] and r["served_by"] == after for r in recent)
        span = (recent[-1]["done_s"] - recent[0]["sent_s"]) if recent else 0
        if after and after != before and settled and span >= settle * 0.8:
            return after
        time.sleep(0.05)
    raise LabkitError(
        f"the cluster endpoint did not settle on a new writer within {timeout:.0f} s",
        field="failover",
        fix="check labkit.endpoints() and the instances' status, then retry",
    )


def _missing(connection: Any, acknowledged: list[int]) -> list[int]:
    """Acknowledged probes that are not on the (new) writer."""
    if not acknowledged:
        return []
    found: set[int] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(acknowledged), 500):
            chunk = acknowledged[start : start + 500]
            cursor.execute(f"SELECT probe FROM bench_failover WHERE probe IN ({', '.join(['%s'] * len(chunk))})", chunk)
            found.update(int(row[0]) for row in cursor.fetchall())
    return sorted(set(acknowledged) - found)
