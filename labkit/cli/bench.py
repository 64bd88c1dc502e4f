"""`labkit bench`: the latency benchmark from a terminal, printing the summary (or JSON for scripts)."""

from __future__ import annotations

import argparse
import json
import math

from labkit.cli.security import _lab_flags, config_from_args


def _bench(args: argparse.Namespace) -> int:
    from labkit.access.sql import close_engines
    from labkit.bench import benchmark

    config = config_from_args(args)
    try:
        result = benchmark(
            args.target or ["writer"], workload=args.workload, path=args.path, concurrency=args.concurrency,
            rate=args.rate, duration=args.duration, count=args.count, config=config,
        )  # fmt: skip
    finally:
        close_engines()
    summary = result.summary()
    if args.save:
        result.save(args.save)
    if args.json:
        records = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in summary.to_dict(orient="records")
        ]
        print(json.dumps({"summary": records, "metadata": result.metadata}, indent=2, default=str))
    else:
        print(summary.round(1).to_string(index=False))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    from labkit.bench.workloads import WORKLOADS

    bench = subparsers.add_parser("bench", parents=[_lab_flags()], help="latency benchmark of writer and reader")
    bench.add_argument("--target", action="append", help="writer (default), reader or a DB instance; repeatable")
    bench.add_argument(
        "--path", default="tunnel", choices=("tunnel", "direct"), help="through the tunnel or from inside"
    )
    bench.add_argument("--workload", default="point", choices=sorted(WORKLOADS), help="what each request does")
    bench.add_argument("--concurrency", type=int, default=1, help="workers, each with its own connection")
    bench.add_argument("--rate", type=float, default=None, help="fixed rate in requests/s (default: closed loop)")
    amount = bench.add_mutually_exclusive_group()
    amount.add_argument("--duration", type=float, default=None, help="seconds to measure per target")
    amount.add_argument("--count", type=int, default=None, help="requests to measure per target (default 1000)")
    bench.add_argument("--save", default=None, help="write every sample to PATH.csv and the metadata to PATH.json")
    bench.add_argument("--json", action="store_true", help="print the summary as JSON (latencies in microseconds)")
    bench.set_defaults(handler=_bench)
