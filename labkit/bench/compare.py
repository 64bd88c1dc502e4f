"""Two or more arms (a target on a path) measured in interleaved rounds, and a verdict that survives drift.

Run one after the other, the writer and the reader see different moments of the machine (a GC pause, another
process, the CPU's clock, a tunnel warming up), and that drift passes for a difference between them. Here
the arms take turns request by request, in a fresh random order each turn, so a stall or a drift hits all
arms alike; every sample keeps its round (`count` turns). Each round gives one paired difference of medians;
the estimate is their median, and its interval a cluster (block) bootstrap over rounds: whole rounds are
resampled with replacement, so the interval covers the variation between rounds and not only between requests (Davison & Hinkley 1997, *Bootstrap Methods and their
Application*, section 3.8, resampling the clusters of hierarchical data; Field & Welsh 2007, "Bootstrapping
clustered data", JRSS B 69(3)).

The verdict says "no practical difference" when the whole interval lies within +/- the threshold: `threshold`
of the second arm's median (default 10%), and at least `floor_us` (default 10 us). A difference that small
would not change a decision about an application or an instance class, whether or not it is "significant";
below 10 us it is smaller than one context switch on a busy machine.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labkit.access.sql import credentials
from labkit.aws.backend import Backend
from labkit.bench import harness, stats
from labkit.bench.connect import c_path, choose_path, connection_point, driver_errors
from labkit.bench.plots import distribution, timeline
from labkit.bench.runner import setup_error, to_frame, worker_operation
from labkit.bench.workloads import find_workload
from labkit.config import lab_and_backend
from labkit.engines import engine_of
from labkit.errors import ConfigError

DEFAULT_THRESHOLD = 0.10  # of the second arm's median: a smaller difference would not change any decision
FLOOR_US = 10.0  # and never under 10 us: one context switch costs more, and no application can tell
SAME_SERVERS = (
    "In the sandbox the writer and the reader are identical MariaDB servers on this machine, so no difference "
    "is expected between them; on Aurora they are separate instances of the same class."
)
Arm = tuple[str, str]  # (target, path)


@dataclass
class Comparison:
    """Every sample with its round, and the verdict on the difference between the first two arms."""

    samples: pd.DataFrame
    arms: list[Arm]
    threshold: float = DEFAULT_THRESHOLD
    floor_us: float = FLOOR_US
    resamples: int = 2000
    seed: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        table = stats.summarize(self.samples)
        rounds = self.samples.groupby(["target", "path"])["round"].nunique().rename("rounds").reset_index()
        return table.merge(rounds, on=["target", "path"])

    def per_round(self, arm: Arm) -> list[np.ndarray]:
        """The measured latencies (us) of `arm`, one array per round, in round order."""
        target, path = arm
        rows = self.samples[
            (self.samples["target"] == target) & (self.samples["path"] == path) & ~self.samples["warmup"]
        ]
        ok = rows[rows["error"].isna()]
        return [group["latency_us"].to_numpy() for _, group in ok.groupby("round", sort=True)]

    def difference(self, first: Arm | None = None, second: Arm | None = None) -> pd.DataFrame:
        """The median over rounds of p50(first) - p50(second) in microseconds, a 95% cluster-bootstrap interval
        over rounds, the threshold and the verdict."""
        first, second = first or self.arms[0], second or self.arms[1]
        a, b = self.per_round(first), self.per_round(second)
        estimate, low, high = stats.round_bootstrap_median_difference(a, b, resamples=self.resamples, seed=self.seed)
        reference = float(np.median(np.concatenate(b))) if b else float("nan")
        limit = max(self.threshold * reference, self.floor_us)
        return pd.DataFrame(
            [
                {
                    "difference": f"p50 {_name(first)} - p50 {_name(second)}",
                    "rounds": min(len(a), len(b)),
                    "estimate_us": estimate,
                    "ci95_low_us": low,
                    "ci95_high_us": high,
                    "threshold_us": limit,
                    "verdict": verdict(low, high, limit, _name(first), _name(second)),
                }
            ]
        )

    def verdict(self) -> str:
        """The verdict in one sentence, with why the sandbox's writer and reader should not differ."""
        row = self.difference().iloc[0]
        text = (
            f"{row['verdict']}: {row['difference']} = {row['estimate_us']:.1f} us, 95% interval "
            f"{row['ci95_low_us']:.1f} to {row['ci95_high_us']:.1f} us over {row['rounds']} interleaved rounds "
            f"(threshold +/- {row['threshold_us']:.1f} us: {self.threshold:.0%} of the second median, at least "
            f"{self.floor_us:g} us)."
        )
        targets = {target for target, _ in self.arms[:2]}
        if self.metadata.get("backend") == "sandbox" and targets == {"writer", "reader"}:
            text += " " + SAME_SERVERS
        return text

    def plot_distribution(self) -> Any:
        return distribution(self.samples)

    def plot_timeline(self) -> Any:
        return timeline(self.samples)

    def __repr__(self) -> str:
        rounds = self.samples["round"].nunique() if len(self.samples) else 0
        return f"<Comparison of {', '.join(map(_name, self.arms))} in {rounds} interleaved rounds>"


def _name(arm: Arm) -> str:
    return f"{arm[0]} ({arm[1]})"


def verdict(low: float, high: float, limit: float, first: str, second: str) -> str:
    """'no practical difference' when [low, high] lies within +/- limit; a direction when it lies beyond it."""
    if any(np.isnan(x) for x in (low, high, limit)):
        return "not measured"
    if -limit <= low and high <= limit:
        return "no practical difference"
    if low > limit:
        return f"{first} is slower"
    if high < -limit:
        return f"{first} is faster"
    return "inconclusive (the interval crosses the threshold: run more rounds)"


def _arms(targets: Sequence[str], paths: Sequence[str | None], backend: Backend) -> list[Arm]:
    arms = [(target, choose_path(path, backend, "compare")) for path in paths for target in targets]
    if len(set(arms)) < 2 or len(set(arms)) != len(arms):
        raise ConfigError(
            f"arms {arms} are not two or more distinct (target, path) pairs",
            field="targets",
            fix="compare two targets (('writer', 'reader')) or two paths (paths=('tunnel', 'direct'))",
        )
    return arms


def compare(
    targets: Sequence[str] | str = ("writer", "reader"),
    *,
    paths: Sequence[str | None] = (None,),
    workload: str = "point",
    rounds: int = 50,
    max_rounds: int = 400,
    count: int = 40,
    warmup: int = 2,
    threshold: float = DEFAULT_THRESHOLD,
    floor_us: float = FLOOR_US,
    seed: int | None = None,
    driver: str = "auto",
    config: Any | None = None,
    backend: Backend | None = None,
) -> Comparison:
    """Measure each (target, path) arm for `count` requests per round (after `warmup`), `rounds` rounds, the
    arms taking turns request by request in a random order, on one connection per arm kept open for the whole
    run; the first two arms are compared. While the verdict is "inconclusive", the rounds are doubled, up to `max_rounds`: a busy
    machine widens the interval, and more rounds narrow it again (a few looks, so the equivalence verdict's
    error rate grows only a little, as in a group-sequential design).

    `paths` defaults to the backend's (direct in the sandbox, the tunnel on AWS). `seed` fixes the order of
    the arms and the bootstrap (None: a fresh order each run).
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    chosen = find_workload(workload)
    if chosen.writes:
        raise ConfigError("compare() measures reads", field="workload", fix="use select1, point or range")
    for name, value, low in (("rounds", rounds, 2), ("max_rounds", max_rounds, rounds), ("count", count, 1),
                             ("warmup", warmup, 0)):  # fmt: skip
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}={value!r}", field=name, fix=f"a whole number of at least {low}")
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold={threshold!r}", field="threshold", fix="a share of the median, e.g. 0.1")
    if not floor_us >= 0:
        raise ConfigError(f"floor_us={floor_us!r}", field="floor_us", fix="microseconds, 0 or more")
    engine = engine_of(config)
    driver = c_path(engine).choose_driver(driver)
    config, backend = lab_and_backend(config, backend)
    arms = _arms(targets, paths, backend)
    order_seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    order = random.Random(order_seed)
    secret = credentials(config, backend)
    frames: list[pd.DataFrame] = []
    with contextlib.ExitStack() as stack:
        operations = {}
        for index, (target, path) in enumerate(arms):
            connect = stack.enter_context(connection_point(target, path, config, backend))
            opened: list[Any] = []
            try:
                operations[(target, path)] = worker_operation(connect, secret, chosen, index, 0, driver, opened)
            except driver_errors(engine) as exc:
                raise setup_error(exc, target, engine) from None
            finally:
                for connection in opened:
                    stack.callback(connection.close)
        base = time.perf_counter_ns()
        done, batch = 0, rounds
        while True:
            for number in range(done, done + batch):
                with harness.paused_garbage_collection():
                    turns = harness.alternate(operations, count, warmup, order)
                for arm, rows in turns.items():
                    frame = to_frame(rows, base, target=arm[0], path=arm[1], workload=chosen.name)
                    frame.insert(3, "round", number)
                    frames.append(frame)
            done += batch
            result = Comparison(pd.concat(frames, ignore_index=True), arms, threshold, floor_us, seed=order_seed)
            if done >= max_rounds or not result.difference()["verdict"][0].startswith("inconclusive"):
                break
            batch = min(done, max_rounds - done)  # double the rounds: looks at 1x, 2x, 4x, 8x `rounds`
    result.metadata = {"backend": backend.name, "workload": chosen.name, "rounds": done, "count_per_round": count,
                       "warmup_per_round": warmup, "order_seed": order_seed, "arms": arms, "driver": driver}  # fmt: skip
    return result
