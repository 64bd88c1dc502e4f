"""Statistics over latency samples: the summary table and a bootstrap interval for a difference of medians.

Percentiles use the inverted-CDF rule (the smallest sample with at least q of the samples at or below it), so
every reported latency is one that was actually observed, as HdrHistogram and sysbench report them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
GROUP = ["target", "path", "workload"]
CHUNK = 100


def percentile(values: np.ndarray | pd.Series | list[float], q: float) -> float:
    """The q-th percentile (0-100) of the values, as an observed value."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * array.size - 1e-9))  # the guard keeps 99.9% of 1000 at 999, not 1000
    return float(np.partition(array, rank - 1)[rank - 1])


def summarize(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per target, path and workload: counts, errors, throughput and latency in microseconds.

    Warm-up samples are excluded; errors are counted, never dropped silently, and never mixed into latency.
    """
    measured = samples[~samples["warmup"]] if "warmup" in samples else samples
    rows = []
    for key, group in measured.groupby(GROUP, sort=False):
        ok = group[group["error"].isna()]
        latency = ok["latency_us"].to_numpy()
        span_s = (group["end_s"].max() - group["intended_s"].min()) if len(group) else 0.0
        row = dict(zip(GROUP, key, strict=True))
        row.update(
            count=len(group),
            errors=int(group["error"].notna().sum()),
            throughput_qps=len(ok) / span_s if span_s > 0 else float("nan"),
            mean_us=float(latency.mean()) if latency.size else float("nan"),
            **{f"{name}_us": percentile(latency, q) for name, q in PERCENTILES.items()},
            max_us=float(latency.max()) if latency.size else float("nan"),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def bootstrap_median_difference(
    first: np.ndarray | pd.Series,
    second: np.ndarray | pd.Series,
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """median(first) - median(second), with a percentile-bootstrap confidence interval: (estimate, low, high)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for start in range(0, resamples, CHUNK):  # chunks keep memory small for long runs
        size = min(CHUNK, resamples - start)
        medians_a = np.median(rng.choice(a, size=(size, a.size), replace=True), axis=1)
        medians_b = np.median(rng.choice(b, size=(size, b.size), replace=True), axis=1)
        differences[start : start + size] = medians_a - medians_b
    tail = (1 - confidence) / 2 * 100
    return (
        float(np.median(a) - np.median(b)),
        float(np.percentile(differences, tail)),
        float(np.percentile(differences, 100 - tail)),
    )


def round_bootstrap_median_difference(
    first: list[np.ndarray],
    second: list[np.ndarray],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """The typical difference of medians between two arms measured side by side in rounds, with a cluster
    bootstrap interval over rounds: (estimate, low, high).

    `first[r]` and `second[r]` are round r's samples of each arm, taken under the same conditions, so each round
    gives one paired difference, p50(first[r]) - p50(second[r]); the estimate is their median. A resample draws
    whole rounds with replacement, so the interval covers the variation between rounds, not only between
    requests (Davison & Hinkley 1997, section 3.8; Field & Welsh 2007).
    """
    rounds = min(len(first), len(second))
    if rounds == 0 or any(r.size == 0 for r in (*first[:rounds], *second[:rounds])):
        return float("nan"), float("nan"), float("nan")
    paired = np.array([np.median(a) - np.median(b) for a, b in zip(first[:rounds], second[:rounds], strict=True)])
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, rounds, size=(resamples, rounds))
    differences = np.median(paired[drawn], axis=1)
    tail = (1 - confidence) / 2 * 100
    return (
        float(np.median(paired)),
        float(np.percentile(differences, tail)),
        float(np.percentile(differences, 100 - tail)),
    )
