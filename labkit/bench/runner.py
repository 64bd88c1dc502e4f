"""`benchmark()`: run a workload against the writer, the reader or an instance, and keep every sample.

Paths: `tunnel` is what the notebook sees (through the Session Manager tunnel); `direct` is what an
application inside the VPC sees (in the sandbox, straight to the MariaDB port; on AWS, the same harness run
on the EC2 instance with Run Command: remote.py). Comparing the two separates the tunnel's cost from the database's.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from labkit import __version__
from labkit.access.lookup import cluster_engine, lab_cluster
from labkit.access.sql import credentials
from labkit.aws.backend import Backend
from labkit.bench import failures, harness, remote, stats
from labkit.bench.connect import PATHS, c_path, connection_point, driver_errors, run_on_writer
from labkit.bench.plots import distribution, timeline
from labkit.bench.workloads import Workload, dbapi_operation, find_workload
from labkit.config import lab_and_backend
from labkit.engines import NO_SCHEMA, AuroraEngine, default_engine, described
from labkit.errors import ConfigError, LabkitError

MAX_CONCURRENCY = 64
MAX_DURATION = 600.0
DEFAULT_COUNT = 1000
# A count is kept in memory sample by sample; a million takes minutes at tunnel latency, 99999999999999 never ends.
MAX_COUNT = 1_000_000
SAMPLE_KEYS = 100  # products 1..100, from create_schema


@dataclass
class BenchResult:
    """Every sample of a run (a tidy DataFrame), its summary, and what it ran on."""

    samples: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        return stats.summarize(self.samples)

    def check(self, max_error_share: float = failures.MAX_ERROR_SHARE) -> BenchResult:
        """Raise BenchmarkFailed (first error and its fix) when more than `max_error_share` of the measured
        requests failed; returns the result otherwise, so `benchmark(...).check()` chains."""
        failures.check(
            self.samples, max_error_share, (described(self.metadata.get("engine")) or default_engine()).dialect
        )
        return self

    def measured(self, target: str) -> pd.Series:
        """Latencies (us) of the successful, post-warm-up samples of one target."""
        rows = self.samples[(self.samples["target"] == target) & ~self.samples["warmup"] & self.samples["error"].isna()]
        return rows["latency_us"]

    def difference(self, first: str = "writer", second: str = "reader", **options: Any) -> pd.DataFrame:
        """p50(first) - p50(second) in microseconds, with a 95% bootstrap confidence interval over requests.

        The targets ran one after the other, so drift between the runs is inside this difference and not in
        its interval: for a verdict, measure them interleaved with `labkit.compare`."""
        estimate, low, high = stats.bootstrap_median_difference(self.measured(first), self.measured(second), **options)
        return pd.DataFrame(
            [
                {
                    "difference": f"p50 {first} - p50 {second}",
                    "estimate_us": estimate,
                    "ci95_low_us": low,
                    "ci95_high_us": high,
                }
            ]
        )

    def plot_distribution(self) -> Any:
        return distribution(self.samples)

    def plot_timeline(self) -> Any:
        return timeline(self.samples)

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write the samples as CSV and the metadata beside it as JSON; returns both paths. `path` is the files'
        name without extension: a folder is refused (DIR.csv would land beside it, not in it)."""
        if Path(path).expanduser().is_dir():
            raise ConfigError(
                f"{path} is a folder", field="save", fix=f"name the files inside it, e.g. {Path(path) / 'run1'}"
            )
        csv_path = Path(path).expanduser().with_suffix(".csv")
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        self.samples.to_csv(csv_path, index=False)
        meta_path = csv_path.with_suffix(".json")
        meta_path.write_text(json.dumps(self.metadata, indent=2, sort_keys=True, default=str))
        return csv_path, meta_path

    def __repr__(self) -> str:
        targets = ", ".join(sorted(self.samples["target"].unique())) if len(self.samples) else "nothing"
        return f"<BenchResult {len(self.samples)} samples of {targets} ({self.metadata.get('mode', '?')})>"


def _validate(
    targets: Sequence[str], chosen: Workload, path: str, concurrency: int, rate: float | None,
    duration: float | None, count: int | None,
) -> None:  # fmt: skip
    if not targets:
        raise ConfigError("no targets to benchmark", field="targets", fix="pass targets=('writer', 'reader')")
    if chosen.writes and any(t == "reader" for t in targets):
        raise ConfigError(
            f"the {chosen.name} workload writes, and readers refuse writes",
            field="workload",
            fix="benchmark inserts on the writer only (targets=('writer',))",
        )
    if path not in PATHS:
        raise ConfigError(f"unknown path {path!r}", field="path", fix=f"use one of {', '.join(PATHS)}")
    if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"concurrency={concurrency!r}", field="concurrency", fix=f"use 1 to {MAX_CONCURRENCY}")
    if rate is not None and not (isinstance(rate, int | float) and rate > 0):
        raise ConfigError(f"rate={rate!r}", field="rate", fix="a positive number of requests per second, or None")
    if duration is not None and count is not None:
        raise ConfigError("both duration and count were given", field="duration", fix="give one of them")
    if duration is not None and not 0 < duration <= MAX_DURATION:
        raise ConfigError(
            f"duration={duration!r}", field="duration", fix=f"use more than 0 and at most {MAX_DURATION:.0f} s"
        )
    if count is not None and not (isinstance(count, int) and count > 0):
        raise ConfigError(f"count={count!r}", field="count", fix="a positive number of requests")
    if count is not None and count > MAX_COUNT:
        raise ConfigError(
            f"count={count} is more requests than one run measures (at most {MAX_COUNT:,})",
            field="count",
            fix=f"use at most {MAX_COUNT} requests, or --duration SECONDS (at most {MAX_DURATION:.0f}) for a timed run",
        )


def benchmark(
    targets: Sequence[str] | str = ("writer", "reader"),
    *,
    workload: str = "point",
    path: str = "tunnel",
    concurrency: int = 1,
    rate: float | None = None,
    duration: float | None = None,
    count: int | None = None,
    warmup: int = 20,
    seed: int = 0,
    driver: str = "auto",
    config: Any | None = None,
    backend: Backend | None = None,
) -> BenchResult:
    """Run `workload` on each target in turn (same schedule each) and return every sample.

    With neither `duration` nor `count`, each target gets 1000 measured requests after the warm-up.
    `driver`: `capi` (the engine's C-speed path: the client adds about what its C reference benchmark's does),
    the engine's DB-API driver by name (pure Python) or `auto` (the C path where it is installed). The direct
    path on AWS runs the DB-API driver on the instance.
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    chosen = find_workload(workload)
    _validate(targets, chosen, path, concurrency, rate, duration, count)
    config, backend = lab_and_backend(config, backend)
    if duration is None and count is None:
        count = DEFAULT_COUNT
    schedule = harness.Schedule(concurrency=concurrency, rate=rate, duration=duration, count=count, warmup=warmup)
    if path == "direct" and not backend.reaches_private_endpoints:  # the instance has the DB-API driver only
        return _benchmark_on_instance(targets, chosen, schedule, seed, config, backend)
    engine = cluster_engine(config, backend)  # what the cluster speaks, whatever the config in hand names
    driver = c_path(engine).choose_driver(driver)
    secret = credentials(config, backend)
    if chosen.writes:
        run_on_writer(engine.sql.bench_writes, config, backend, secret, path)
    frames = []
    started = datetime.now(UTC)
    for target in targets:
        with connection_point(target, path, config, backend) as connect:
            opened: list[Any] = []

            def make_operation(worker: int, connect=connect, opened=opened) -> harness.Operation:
                return worker_operation(connect, secret, chosen, worker, seed, driver, opened)

            try:
                rows, start_ns = harness.run(make_operation, schedule)
            except driver_errors(engine) as exc:
                raise setup_error(exc, target, engine) from None
            finally:
                for connection in opened:
                    with contextlib.suppress(Exception):
                        connection.close()
        frames.append(to_frame(rows, start_ns, target=target, path=path, workload=chosen.name))
    metadata = _metadata(config, backend, chosen, path, schedule, started)
    metadata.update(driver=driver, c_client=c_path(engine).version() if driver == "capi" else None)
    return BenchResult(pd.concat(frames, ignore_index=True), metadata)


def worker_operation(
    connect: Any, secret: Any, chosen: Workload, worker: int, seed: int, driver: str, opened: list[Any]
) -> harness.Operation:
    """One worker's operation on its own connection (kept in `opened` to be closed after the run)."""
    if driver == "capi":
        connection = connect.capi(secret)
        opened.append(connection)
        return c_path(connect.engine).operation(connection, chosen, worker, SAMPLE_KEYS, seed)
    operation, connection = dbapi_operation(lambda: connect(secret), chosen, worker, SAMPLE_KEYS, seed)
    opened.append(connection)
    return operation


def _benchmark_on_instance(
    targets: list[str], chosen: Workload, schedule: harness.Schedule, seed: int, config: Any, backend: Backend
) -> BenchResult:
    """AWS's direct path: the harness runs on the lab's instance (Run Command), inside the VPC."""
    remote.check_size(schedule)
    started = datetime.now(UTC)
    frames, instance_meta = [], {}
    for target in targets:
        spec = remote.spec_for(target, chosen, schedule, seed, SAMPLE_KEYS, config, backend)
        rows, start_ns, instance_meta = remote.run_on_instance(spec, backend)
        frames.append(to_frame(rows, start_ns, target=target, path="direct", workload=chosen.name))
    metadata = _metadata(config, backend, chosen, "direct", schedule, started)
    metadata.update({f"instance_{k}": v for k, v in instance_meta.items()}, ran_on="the lab's EC2 instance")
    metadata.update(driver=cluster_engine(config, backend).dialect.dbapi.module)  # the instance's driver, no C path
    return BenchResult(pd.concat(frames, ignore_index=True), metadata)


def to_frame(rows: list[harness.Row], start_ns: int, **labels: str) -> pd.DataFrame:
    """The harness's rows as the tidy sample table (times in seconds from the start, latencies in us)."""
    frame = pd.DataFrame(rows, columns=["worker", "seq", "intended_ns", "start_ns", "end_ns", "error", "warmup"])
    for name, value in reversed(labels.items()):
        frame.insert(0, name, value)
    frame["intended_s"] = (frame.pop("intended_ns") - start_ns) / 1e9
    frame["start_s"] = (frame.pop("start_ns") - start_ns) / 1e9
    frame["end_s"] = (frame.pop("end_ns") - start_ns) / 1e9
    frame["latency_us"] = (frame["end_s"] - frame["intended_s"]) * 1e6  # from the intended send time
    frame["service_us"] = (frame["end_s"] - frame["start_s"]) * 1e6  # from the actual send time
    frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), None)
    frame["warmup"] = frame["warmup"].astype(bool)
    return frame


def setup_error(exc: Exception, target: str, engine: AuroraEngine | None = None) -> LabkitError:
    dialect = (engine or default_engine()).dialect  # the benchmark's raw requests: its errors are the dialect's
    if dialect.kind(dialect.error_code(exc)) == NO_SCHEMA:
        message = dialect.error_message(exc, fallback=str(exc))
        return LabkitError(message, field="schema", fix=failures.FIXES[NO_SCHEMA])
    return LabkitError(
        f"could not connect to {target}: {exc}", field="targets", fix="check labkit.whoami(target) works"
    )


def _engine_version(config: Any, backend: Backend) -> str:
    """The version the lab's cluster runs (the config may say only 'default' or 'lts')."""
    try:
        return str(lab_cluster(config, backend).get("EngineVersion") or config.engine_version)
    except (LabkitError, ClientError):  # metadata only: never fail a finished benchmark for it
        return str(config.engine_version)


def _metadata(
    config: Any, backend: Backend, chosen: Workload, path: str, schedule: harness.Schedule, started: datetime
) -> dict[str, Any]:
    engine = cluster_engine(config, backend)
    dbapi = engine.dialect.dbapi
    return {
        "backend": backend.name,
        "engine": engine.name,
        "region": backend.region,
        "lab": config.lab,
        "learner": config.learner,
        "db_instance_class": config.db_instance_class,
        "engine_version": _engine_version(config, backend),
        "workload": chosen.name,
        "sql": chosen.sql,
        "path": path,
        "mode": schedule.mode,
        "concurrency": schedule.concurrency,
        "rate": schedule.rate,
        "duration": schedule.duration,
        "count": schedule.count,
        "warmup_per_worker": schedule.warmup,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "labkit": __version__,
        dbapi.module: dbapi.version(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "clock": time.get_clock_info("perf_counter").implementation,
    }
