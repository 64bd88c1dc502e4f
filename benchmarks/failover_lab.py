"""The failover lab's comparison on the sandbox: every client strategy through the three failures, the median of
`--runs` runs per cell (issue #26's figures), and how long the whole comparison took.

    .venv/bin/python benchmarks/failover_lab.py [--engine aurora-postgresql] [--runs 5] [--after 15]
        [--strategy naive --strategy wrapper ...] [--json]

In a fresh temporary LABKIT home it starts a sandbox whose cluster endpoint follows a new writer
LABKIT_SANDBOX_ENDPOINT_DELAY s after a promotion (default 5 s, Aurora's DNS TTL; the variable is honoured when
set), applies a lab, and runs `labkit.failover_lab` (the notebook's and `labkit failover-lab`'s function) with a
fixed seed: the strategies start in a random order in every run. Prints the table (medians over the runs), the
conclusion worded from it, the acknowledged writes lost (0 unless the lab failed), and the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import pandas as pd
from _lab import fresh_lab

from labkit.engines import DEFAULT_ENGINE, ENGINES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=sorted(ENGINES), default=DEFAULT_ENGINE)
    parser.add_argument("--runs", type=int, default=5, help="runs of each failure (default 5)")
    parser.add_argument("--after", type=float, default=15.0, help="seconds written after a failure, at most")
    parser.add_argument("--strategy", action="append", help="a strategy (repeat; default the four, as the notebook)")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--json", action="store_true", help="print the measures as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labkit-failover-lab-") as home:
        os.environ["LABKIT_HOME"] = home
        from labkit import sandbox
        from labkit.failover_lab import DEFAULT_STRATEGIES, failover_lab
        from labkit.sandbox.procs.settings import endpoint_delay

        try:
            config, backend, _ = fresh_lab("failover", args.engine)
            started = time.monotonic()
            strategies = tuple(args.strategy or DEFAULT_STRATEGIES)
            result = failover_lab(strategies, runs=args.runs, after=args.after, seed=args.seed, config=config,
                                  backend=backend)  # fmt: skip
            seconds = time.monotonic() - started
        finally:
            sandbox.down(quiet=True)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(f"{args.engine}, endpoint delay {endpoint_delay(os.environ):g} s, {args.runs} runs per failure, "
              f"median per cell:")  # fmt: skip
        print(result.table().to_string())
    print()
    print(result.conclusion())
    print(f"\n{len(result.runs)} failures, {seconds:.0f} s in all ({seconds / len(result.runs):.1f} s per failure)")
    if args.json:
        print(json.dumps(result.to_json(), default=str, indent=1))


if __name__ == "__main__":
    main()
