"""Plots of a benchmark's samples: the latency distribution (ECDF) per target and latency over time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _measured(samples: pd.DataFrame) -> pd.DataFrame:
    return samples[~samples["warmup"] & samples["error"].isna()]


def _label(group: pd.DataFrame) -> str:
    first = group.iloc[0]
    return f"{first['target']} ({first['path']}, {first['workload']})"


def distribution(samples: pd.DataFrame) -> Any:
    """ECDF of latency per target, log-scaled in microseconds, with p50 and p99 marked."""
    import matplotlib.pyplot as plt  # heavy dependency: loaded only when a plot is drawn

    figure, axes = plt.subplots(figsize=(8, 4))
    for _, group in _measured(samples).groupby(["target", "path", "workload"], sort=False):
        values = np.sort(group["latency_us"].to_numpy())
        fraction = np.arange(1, values.size + 1) / values.size
        (line,) = axes.step(values, fraction, where="post", label=_label(group))
        for q in (0.5, 0.99):
            axes.plot(values[min(values.size - 1, int(q * values.size))], q, "o", color=line.get_color(), ms=4)
    axes.set_xscale("log")
    axes.set_xlabel("latency (µs, log scale)")
    axes.set_ylabel("fraction of requests at or below")
    axes.set_title("Latency distribution (dots: p50 and p99)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    plt.close(figure)
    return figure


def timeline(samples: pd.DataFrame) -> Any:
    """Latency of every request against when it was meant to be sent: stalls and drifts show up here."""
    import matplotlib.pyplot as plt  # heavy dependency: loaded only when a plot is drawn

    figure, axes = plt.subplots(figsize=(8, 4))
    for _, group in _measured(samples).groupby(["target", "path", "workload"], sort=False):
        axes.plot(group["intended_s"], group["latency_us"], ".", ms=2, alpha=0.6, label=_label(group))
    errors = samples[samples["error"].notna()]
    if len(errors):
        axes.plot(errors["intended_s"], np.full(len(errors), axes.get_ylim()[1]), "x", color="red", label="errors")
    axes.set_yscale("log")
    axes.set_xlabel("intended send time (s from the start of each target's run)")
    axes.set_ylabel("latency (µs, log scale)")
    axes.set_title("Latency over time")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(markerscale=4)
    figure.tight_layout()
    plt.close(figure)
    return figure
