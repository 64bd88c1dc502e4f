"""What the tunnel adds to each request: the same workload through the tunnel and direct, measured in rounds.

Two runs one after the other see different moments of the machine, and in the sandbox, where the tunnel adds
little, that drift once showed the tunnel *faster* than the direct path (0.83x). Here the two paths take turns
in rounds, and each round gives one paired difference (as `compare` does): where this machine reaches the
endpoints (the sandbox), request by request within each round; on AWS, where the direct path runs on the
instance through Run Command, one batch per path per round, in a random order each round.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from labkit.aws.backend import Backend
from labkit.bench.compare import Comparison, compare
from labkit.bench.runner import benchmark
from labkit.config import lab_and_backend
from labkit.errors import ConfigError

PATHS = ("tunnel", "direct")
COLUMNS = ["target", "tunnel_p50_us", "direct_p50_us", "added_us", "added_ci95_low_us", "added_ci95_high_us",
           "tunnel_over_direct", "rounds", "interleaved"]  # fmt: skip


def tunnel_cost(
    targets: Sequence[str] | str = ("writer", "reader"),
    *,
    rounds: int | None = None,
    count: int = 30,
    workload: str = "point",
    seed: int | None = None,
    config: Any | None = None,
    backend: Backend | None = None,
) -> pd.DataFrame:
    """Per target: p50 through the tunnel and direct, what the tunnel adds (the median over rounds of each
    round's difference, with a 95% cluster-bootstrap interval over rounds), their ratio, and how they were
    interleaved. `rounds` defaults to 20 where requests interleave, 6 where each path runs as a batch."""
    targets = [targets] if isinstance(targets, str) else list(targets)
    config, backend = lab_and_backend(config, backend)
    by_request = backend.reaches_private_endpoints
    rounds = rounds if rounds is not None else (20 if by_request else 6)
    if not isinstance(rounds, int) or rounds < 2:
        raise ConfigError(f"rounds={rounds!r}", field="rounds", fix="a whole number of at least 2")
    if by_request:
        measured = compare(targets, paths=PATHS, workload=workload, rounds=rounds, max_rounds=rounds, count=count,
                           seed=seed, config=config, backend=backend)  # fmt: skip
        how = "by request"
    else:
        measured = _batched(targets, rounds, count, workload, seed, config, backend)
        how = "by batch"
    return _table(measured, targets, how)


def _batched(
    targets: list[str], rounds: int, count: int, workload: str, seed: int | None, config: Any, backend: Backend
) -> Comparison:
    """Each round runs every (target, path) once, `count` requests each, in a fresh random order."""
    order = random.Random(seed)
    arms = [(target, path) for path in PATHS for target in targets]
    frames = []
    for number in range(rounds):
        for target, path in order.sample(arms, len(arms)):
            samples = benchmark(target, workload=workload, path=path, count=count, warmup=2, config=config,
                                backend=backend).samples  # fmt: skip
            frames.append(samples.assign(round=number))
    return Comparison(pd.concat(frames, ignore_index=True), arms, seed=seed or 0)


def _table(measured: Comparison, targets: list[str], how: str) -> pd.DataFrame:
    """Per target, from each round's pair of medians: their medians over rounds, the ratio (the median of the
    rounds' ratios: paired, so a slow round slows both paths and cancels) and the difference with its interval."""
    rows = []
    for target in targets:
        tunnel, direct = (np.array([np.median(r) for r in measured.per_round((target, p))]) for p in PATHS)
        paired = min(len(tunnel), len(direct))
        difference = measured.difference((target, "tunnel"), (target, "direct")).iloc[0]
        rows.append(
            {
                "target": target,
                "tunnel_p50_us": float(np.median(tunnel)) if paired else float("nan"),
                "direct_p50_us": float(np.median(direct)) if paired else float("nan"),
                "added_us": difference["estimate_us"],
                "added_ci95_low_us": difference["ci95_low_us"],
                "added_ci95_high_us": difference["ci95_high_us"],
                "tunnel_over_direct": float(np.median(tunnel[:paired] / direct[:paired])) if paired else float("nan"),
                "rounds": paired,
                "interleaved": how,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)
