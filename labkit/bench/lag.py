"""Replica lag, measured end to end: write a marker on the writer, time until each reader returns it.

Each reader is polled on its own instance endpoint (not the reader endpoint, which would pick one at random),
in parallel, as fast as a round trip allows; the poll's round trip bounds the resolution. On Aurora the
cluster's own view of its replicas' lag (the engine's status view) is read as well.

The marker table is created on the writer and reaches the readers by replication like any change, so the
clock starts only once every reader shows the table: a reader that has not applied the CREATE yet would
answer "Table 'shop.bench_lag' doesn't exist" (the dialect's no-schema error) instead of "not yet".
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from labkit.access.lookup import lab_cluster
from labkit.access.sql import credentials
from labkit.aws.backend import Backend
from labkit.aws.tags import cluster_roles
from labkit.bench.connect import choose_path, connection_point
from labkit.bench.stats import percentile
from labkit.config import lab_and_backend
from labkit.engines import NO_SCHEMA, AuroraEngine, Dialect, engine_of
from labkit.errors import ConfigError, LabkitError

TABLE_POLL_SECONDS = 0.01


@dataclass
class LagResult:
    """One row per marker and reader: the lag in milliseconds (or the error), and how many polls it took."""

    samples: pd.DataFrame
    aurora_status: pd.DataFrame | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        rows = []
        for reader, group in self.samples.groupby("reader", sort=True):
            seen = group[group["error"].isna()]["lag_ms"].to_numpy()
            rows.append(
                {
                    "reader": reader,
                    "markers": len(group),
                    "errors": int(group["error"].notna().sum()),
                    "p50_ms": percentile(seen, 50),
                    "p90_ms": percentile(seen, 90),
                    "p99_ms": percentile(seen, 99),
                    "max_ms": float(seen.max()) if seen.size else float("nan"),
                }
            )
        return pd.DataFrame(rows)

    def plot(self) -> Any:
        import matplotlib.pyplot as plt  # heavy dependency: loaded only when a plot is asked for

        figure, axes = plt.subplots(figsize=(8, 3.5))
        for reader, group in self.samples.groupby("reader", sort=True):
            axes.plot(group["marker"], group["lag_ms"], ".-", ms=3, label=reader)
        axes.set_xlabel("marker")
        axes.set_ylabel("lag (ms)")
        axes.set_title("Time from commit on the writer until each reader returns the row")
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout()
        plt.close(figure)
        return figure


def replica_lag(
    markers: int = 50,
    *,
    interval: float = 0.02,
    timeout: float = 10.0,
    path: str | None = None,
    config: Any | None = None,
    backend: Backend | None = None,
) -> LagResult:
    """Write `markers` rows on the writer, one every `interval` s, and time how long each reader takes to show each.

    `path` defaults to the backend's: straight to each instance where this machine reaches the endpoints
    (the sandbox), through tunnels on AWS (the endpoints are private there).
    """
    if not isinstance(markers, int) or not 1 <= markers <= 10_000:
        raise ConfigError(f"markers={markers!r}", field="markers", fix="use 1 to 10000")
    if timeout <= 0:
        raise ConfigError(f"timeout={timeout!r}", field="timeout", fix="a positive number of seconds")
    config, backend = lab_and_backend(config, backend)
    _, readers = cluster_roles(lab_cluster(config, backend))
    if not readers:
        raise ConfigError(
            "the cluster has no reader", field="readers", fix="create one (config readers=1, then `labkit up`)"
        )
    path = choose_path(path, backend, "replica_lag")
    secret = credentials(config, backend)
    engine = engine_of(config)
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(connection_point("writer", path, config, backend))(secret)
        stack.callback(writer.close)
        polls = {}
        for reader in readers:
            connection = stack.enter_context(connection_point(reader, path, config, backend))(secret)
            stack.callback(connection.close)
            polls[reader] = connection
        with writer.cursor() as cursor:
            cursor.execute(engine.sql.bench_lag)
        for reader, connection in polls.items():
            _wait_for_table(connection, reader, timeout, engine.dialect)
        base = time.time_ns() // 1000
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=len(readers)))
        for index in range(markers):
            marker = base + index
            with writer.cursor() as cursor:
                cursor.execute("INSERT INTO bench_lag (id) VALUES (%s)", (marker,))
            committed = time.perf_counter_ns()
            futures = {r: pool.submit(_poll, polls[r], marker, committed, timeout) for r in readers}
            for reader, future in futures.items():
                lag_ms, count, error = future.result()
                rows.append({"marker": index, "reader": reader, "lag_ms": lag_ms, "polls": count, "error": error})
            time.sleep(interval)
        aurora = _aurora_status(writer, engine)
    frame = pd.DataFrame(rows)
    frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), None)
    return LagResult(frame, aurora, {"backend": backend.name, "path": path, "markers": markers, "readers": readers})


def _wait_for_table(connection: Any, reader: str, timeout: float, dialect: Dialect) -> None:
    """Until the reader has applied the marker table's CREATE (replication carries DDL like any change)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while True:
            try:
                cursor.execute("SELECT 1 FROM bench_lag LIMIT 0")
                return
            except dialect.dbapi.load().ProgrammingError as exc:
                if dialect.kind(dialect.error_code(exc)) != NO_SCHEMA:
                    raise
            if time.monotonic() > deadline:
                raise LabkitError(
                    f"the reader {reader} did not show the table bench_lag within {timeout:g} s of its creation "
                    "on the writer: it is not applying the writer's changes",
                    field="readers",
                    fix="check the reader's status with labkit.endpoints(); a reader that does not replicate "
                    "cannot be measured",
                )
            time.sleep(TABLE_POLL_SECONDS)


def _poll(connection: Any, marker: int, committed_ns: int, timeout: float) -> tuple[float, int, str | None]:
    deadline = committed_ns + int(timeout * 1e9)
    count = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT 1 FROM bench_lag WHERE id = %s", (marker,))
            count += 1
            seen = cursor.fetchone() is not None
            now = time.perf_counter_ns()
            if seen:
                return (now - committed_ns) / 1e6, count, None
            if now > deadline:
                return float("nan"), count, f"not seen within {timeout:g} s"


def _aurora_status(writer: Any, engine: AuroraEngine) -> pd.DataFrame | None:
    """Aurora's own lag figures; None where the engine's status view does not exist (the sandbox's MariaDB)."""
    statements = engine.sql
    try:
        with writer.cursor() as cursor:
            cursor.execute(statements.replica_status)
            return pd.DataFrame(cursor.fetchall(), columns=list(statements.replica_status_columns))
    except engine.dialect.dbapi.errors():
        return None
