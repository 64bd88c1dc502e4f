"""A failover, watched from outside: probe the cluster endpoint every 100 ms while the writer changes.

Each probe is what an application does after a failover: a new connection to the cluster endpoint, a write
(autocommit) and a read of which instance answered. The report says how long writes were impossible, which
instance was the writer before and after, and proves that every write that was acknowledged is still there.

The clock is the probes' own: downtime runs from the last write the old writer acknowledged to the first the
new writer acknowledged. The API is asked only which instance is the writer, and at most once every
`api_poll` seconds: RDS allows a sustained 12 requests per second per account and region, shared by a whole
class ("Request throttling for the Amazon RDS API",
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-api-throttling.html).
Before the failover call, one probe warms the path (the first connection through a fresh tunnel takes
about a second) and at least one write must be acknowledged by the old writer.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from labkit.access.lookup import lab_cluster
from labkit.access.sql import credentials
from labkit.aws.backend import Backend
from labkit.aws.tags import cluster_roles
from labkit.bench.connect import choose_path, connection_point, run_on_writer
from labkit.config import lab_and_backend
from labkit.engines import Dialect, engine_of
from labkit.errors import ConfigError, LabkitError

API_POLL_SECONDS = 2.0  # DescribeDBClusters at most every 2 s: 24 learners failing over at once stay under 12/s
MIN_API_POLL_SECONDS = 1.0
PROBE_CHECK_SECONDS = 0.05  # how often the waiting thread looks at the probes (local, no API call)
# The plot's colours (matplotlib's default cycle, colour-blind friendly): one per instance, red for failures.
BEFORE_COLOUR, AFTER_COLOUR, FAILED_COLOUR, OTHER_COLOUR = "tab:blue", "tab:orange", "tab:red", "tab:gray"


@dataclass
class FailoverReport:
    """The probes (one row each, with when each was sent, acknowledged and done), the writer before and
    after, the moment of the failover call, and the durability check."""

    probes: pd.DataFrame
    writer_before: str
    writer_after: str
    failover_at_s: float
    acknowledged: int
    lost: list[int] = field(default_factory=list)
    started_ns: int = 0  # time.perf_counter_ns() at the probes' second 0, to line other clocks up with it

    def _window(self) -> tuple[float, float]:
        """(last write acknowledged by the old writer, first acknowledged by the new writer), in seconds."""
        acked = self.probes[self.probes["acknowledged"]]
        old = acked[acked["served_by"] == self.writer_before]
        last = old["acked_s"].max() if len(old) else acked[acked["acked_s"] <= self.failover_at_s]["acked_s"].max()
        new = acked[(acked["served_by"] == self.writer_after) & (acked["acked_s"] > last)]
        first = new["acked_s"].min() if len(new) else acked[acked["acked_s"] > last]["acked_s"].min()
        return float(last), float(first)

    @property
    def downtime_s(self) -> float:
        """From the last write the old writer acknowledged to the first the new writer acknowledged: no probe
        in flight at the failover call counts, only acknowledged writes (resolution: the probe interval)."""
        last, first = self._window()
        return max(0.0, first - last) if not (math.isnan(last) or math.isnan(first)) else float("nan")

    def summary(self) -> pd.DataFrame:
        ok = self.probes["ok"]
        last, first = self._window()
        return pd.DataFrame(
            [
                {"measure": "writer before", "value": self.writer_before},
                {"measure": "writer after", "value": self.writer_after},
                {"measure": "probes", "value": len(self.probes)},
                {"measure": "failed probes", "value": int((~ok).sum())},
                {"measure": "failover called at (s)", "value": round(self.failover_at_s, 3)},
                {"measure": "last write on the old writer (s)", "value": round(last, 3)},
                {"measure": "first write on the new writer (s)", "value": round(first, 3)},
                {"measure": "write downtime (s)", "value": round(self.downtime_s, 3)},
                {"measure": "writes acknowledged", "value": self.acknowledged},
                {"measure": "acknowledged writes lost", "value": len(self.lost)},
            ]
        )

    def plot(self) -> Any:
        """Each probe as a span from sent to done (a probe in flight at the call overlaps the call's line),
        coloured by the instance that served it: the endpoint's move from one instance to the other is the
        lesson. The legend sits below the axes, where it hides no bar."""
        import matplotlib.pyplot as plt  # heavy dependency: loaded only when a plot is asked for

        figure, axes = plt.subplots(figsize=(8, 3.6), layout="constrained")
        last, first = self._window()
        if not (math.isnan(last) or math.isnan(first)):
            axes.axvspan(last, first, color=FAILED_COLOUR, alpha=0.12, label="no write acknowledged")
        for (ok, served_by), group in self.probes.groupby(["ok", "served_by"], dropna=False, sort=False):
            label, colour = self._series(bool(ok), served_by)
            y = 1 if ok else 0
            axes.hlines([y] * len(group), group["sent_s"], group["done_s"], lw=6, label=label, colors=colour)
            acked = group[group["acknowledged"]]
            axes.plot(acked["acked_s"], [y] * len(acked), "|", color="black", ms=10)
        axes.axvline(self.failover_at_s, color="grey", linestyle="--", label="failover_db_cluster called")
        axes.set_yticks([0, 1], ["failed", "ok"])
        axes.set_ylim(-0.5, 1.5)
        axes.set_xlabel("seconds (bars: each probe from sent to done; ticks: write acknowledged)")
        axes.set_title(f"Probes of the cluster endpoint: {self.downtime_s:.2f} s without an acknowledged write")
        figure.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
        plt.close(figure)
        return figure

    def _series(self, ok: bool, served_by: Any) -> tuple[str, str]:
        """A probe group's legend label and colour: failed, the writer before, the writer after, or another."""
        if not ok:
            return "failed", FAILED_COLOUR
        if served_by == self.writer_before:
            return f"ok, served by {served_by} (the writer before)", BEFORE_COLOUR
        if served_by == self.writer_after:
            return f"ok, served by {served_by} (the writer after)", AFTER_COLOUR
        return f"ok, served by {served_by}", OTHER_COLOUR


class Periodic(threading.Thread):
    """Calls `tick()` every `interval` s on its own thread (each on schedule from the start, not after the last
    one ended) until `stop` is set; `rows` keeps what the ticks record, `seconds()` is the clock they share."""

    def __init__(self, name: str, interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.rows: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.start_ns = time.perf_counter_ns()

    def tick(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        begin = time.perf_counter_ns()
        index = 0
        while not self.stop.is_set():
            intended = begin + int(index * self.interval * 1e9)
            delay = (intended - time.perf_counter_ns()) / 1e9
            if delay > 0 and self.stop.wait(delay):
                break
            self.tick()
            index += 1

    def seconds(self) -> float:
        return (time.perf_counter_ns() - self.start_ns) / 1e9


class _Monitor(Periodic):
    """Probes every `interval` s on its own thread."""

    def __init__(self, connect: Any, interval: float, dialect: Dialect) -> None:
        super().__init__("failover-monitor", interval)
        self.connect = connect
        self.dialect = dialect  # asks which instance answered
        self.base = time.time_ns() // 1000
        self.next_probe = 0

    def probe_now(self) -> dict[str, Any]:
        """One probe on the caller's thread (the warm-up), kept with the others."""
        row = self._probe(self.base + self.next_probe)
        self.next_probe += 1
        self.rows.append(row)
        return row

    def tick(self) -> None:
        self.probe_now()

    def _probe(self, probe: int) -> dict[str, Any]:
        row: dict[str, Any] = {"probe": probe, "sent_s": self.seconds(), "acked_s": float("nan"), "ok": False,
                               "acknowledged": False, "served_by": None, "error": None}  # fmt: skip
        try:
            connection = self.connect()
            try:
                with connection.cursor() as cursor:
                    served_by = _identity(cursor, self.dialect)
                    cursor.execute("INSERT INTO bench_failover (probe, served_by) VALUES (%s, %s)", (probe, served_by))
                    row["acked_s"] = self.seconds()
                    row["acknowledged"] = True  # autocommit: the INSERT returned, so it committed
                    row["served_by"] = served_by
                    cursor.execute("SELECT COUNT(*) FROM bench_failover WHERE probe = %s", (probe,))
                    row["ok"] = cursor.fetchone()[0] == 1
            finally:
                connection.close()
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"[:200]
        row["done_s"] = self.seconds()
        return row


def _identity(cursor: Any, dialect: Dialect) -> str:
    """Which instance answered, asked with the engine dialect's identity queries (the probe's raw driver is its)."""
    for query in dialect.identity_queries:
        try:
            cursor.execute(query)
            return str(cursor.fetchone()[0])
        except dialect.dbapi.errors():
            continue
    return "?"


def failover(
    *,
    interval: float = 0.1,
    baseline: float = 1.0,
    settle: float = 1.0,
    timeout: float = 120.0,
    api_poll: float = API_POLL_SECONDS,
    path: str | None = None,
    config: Any | None = None,
    backend: Backend | None = None,
) -> FailoverReport:
    """Fail the cluster over to a reader while probing the cluster endpoint every `interval` s.

    `baseline` s of probes (at least one write acknowledged by the old writer) come before the call; the run
    ends when the new writer has answered every probe for `settle` s. `path` follows the backend when unset
    (straight to the endpoint in the sandbox, through the tunnel on AWS).
    """
    if not 0.01 <= interval <= 5:
        raise ConfigError(f"interval={interval!r}", field="interval", fix="probe every 0.01 to 5 s (default 0.1)")
    if not api_poll >= MIN_API_POLL_SECONDS:
        raise ConfigError(
            f"api_poll={api_poll!r}",
            field="api_poll",
            fix=f"ask the RDS API at most once a second (api_poll >= {MIN_API_POLL_SECONDS:g}); RDS allows 12 "
            "requests per second per account and region, shared by the whole class",
        )
    config, backend = lab_and_backend(config, backend)
    cluster = lab_cluster(config, backend)
    writer_before, readers = cluster_roles(cluster)
    if not readers:
        raise ConfigError("a failover needs a reader to promote", field="readers", fix="set readers=1 and apply")
    path = choose_path(path, backend, "failover")
    secret = credentials(config, backend)
    engine = engine_of(config)
    run_on_writer(engine.sql.bench_failover, config, backend, secret, path)
    with connection_point("writer", path, config, backend) as connect:
        monitor = _Monitor(lambda: _probe_connection(connect, secret), interval, engine.dialect)
        _warm_up(monitor, writer_before or "", timeout)
        monitor.start()
        try:
            _wait_for_baseline(monitor, writer_before or "", baseline, timeout)
            failover_at = monitor.seconds()
            backend.client("rds").failover_db_cluster(
                DBClusterIdentifier=cluster["DBClusterIdentifier"], TargetDBInstanceIdentifier=readers[0]
            )
            writer_after = _wait_for_new_writer(
                config, backend, writer_before or "", monitor, settle, timeout, api_poll
            )
        finally:  # the probe never outlives the call, whatever failed
            monitor.stop.set()
            monitor.join()
        probes = pd.DataFrame(monitor.rows)
        acknowledged = [int(p) for p in probes.loc[probes["acknowledged"], "probe"]]
        check = connect(secret)
        try:
            lost = _missing(check, acknowledged)
        finally:
            check.close()
    return FailoverReport(
        probes, writer_before or "", writer_after, failover_at, len(acknowledged), lost, monitor.start_ns
    )


def _probe_connection(connect: Any, secret: Any) -> Any:
    return connect(secret, timeout=2)  # a probe must not hang on a dead server


def _warm_up(monitor: _Monitor, writer: str, timeout: float) -> None:
    """Probe until one write is acknowledged by the writer: the first connection through a fresh tunnel is
    slow, and a probe still in flight at the failover call would say nothing about the failover."""
    deadline = time.monotonic() + timeout
    while True:
        row = monitor.probe_now()
        if row["acknowledged"] and row["served_by"] in (writer, "?"):
            return
        if time.monotonic() > deadline:
            raise LabkitError(
                f"no probe could write on the writer {writer} before the failover: {row['error']}",
                field="failover",
                fix="check labkit.sql('SELECT 1') works on the writer, then retry",
            )
        monitor.stop.wait(monitor.interval)


def _acked_on(monitor: _Monitor, writer: str, since_s: float) -> bool:
    return any(r["acknowledged"] and r["served_by"] == writer and r["sent_s"] >= since_s for r in list(monitor.rows))


def _wait_for_baseline(monitor: _Monitor, writer: str, baseline: float, timeout: float) -> None:
    """`baseline` s of periodic probes, at least one of them a write acknowledged by the old writer."""
    started = monitor.seconds()
    deadline = time.monotonic() + baseline + timeout
    while not (monitor.seconds() - started >= baseline and _acked_on(monitor, writer, started)):
        if time.monotonic() > deadline or not monitor.is_alive():
            raise LabkitError(
                f"the probes wrote nothing on the writer {writer} in {baseline + timeout:.0f} s",
                field="failover",
                fix="check labkit.sql('SELECT 1') works on the writer, then retry",
            )
        monitor.stop.wait(PROBE_CHECK_SECONDS)


def _settled(monitor: _Monitor, writer: str, settle: float) -> bool:
    """Every probe of the last `settle` s succeeded on `writer`, and they span most of it."""
    rows = list(monitor.rows)
    if not rows:
        return False
    recent = [r for r in rows if r["done_s"] >= rows[-1]["done_s"] - settle]
    span = recent[-1]["done_s"] - recent[0]["sent_s"]
    return all(r["ok"] and r["served_by"] == writer for r in recent) and span >= settle * 0.8


def _wait_for_new_writer(
    config: Any, backend: Backend, before: str, monitor: _Monitor, settle: float, timeout: float, api_poll: float
) -> str:
    """Until the API names a new writer and probes have succeeded on it for `settle` seconds.

    The API is asked at most every `api_poll` s and not again once it has named the new writer; the probes,
    which cost no API call, are looked at every PROBE_CHECK_SECONDS."""
    deadline = time.monotonic() + timeout
    after, next_ask = "", 0.0
    while time.monotonic() < deadline:
        if (not after or after == before) and time.monotonic() >= next_ask:
            after = cluster_roles(lab_cluster(config, backend))[0] or ""
            next_ask = time.monotonic() + api_poll
        if after and after != before and _settled(monitor, after, settle):
            return after
        if not monitor.is_alive():
            break
        monitor.stop.wait(PROBE_CHECK_SECONDS)
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
