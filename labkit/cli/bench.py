"""`labkit bench`: the latency benchmark from a terminal, printing the summary (or JSON for scripts).

A run in which more than `--max-error-share` of the requests failed exits 1 and prints the first error and its
fix after the summary: a table of NaN percentiles alone would not say that nothing was measured.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import labkit
from labkit.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED, handles_errors
from labkit.cli.options import config_from_args, lab_flags, output_prefix, positive_number, print_json
from labkit.errors import ConfigError


class _WorkloadNames(Sequence[str]):
    """The `--workload` choices, read from labkit.bench only when `bench` parses or prints its help.

    labkit.bench loads pandas, and `labkit --help` must not. argparse reads the choices only to check a
    value or to print `bench --help`.
    """

    def _names(self) -> list[str]:
        return sorted(labkit.bench.WORKLOADS)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())


@handles_errors(failed=EXIT_BAD_INPUT)
def _bench(args: argparse.Namespace) -> int:
    if not 0 <= args.max_error_share < 1:
        raise ConfigError(
            f"--max-error-share {args.max_error_share}", field="max-error-share", fix="a share from 0 to below 1"
        )
    config = config_from_args(args)
    try:
        result = labkit.benchmark(
            args.target or ["writer"], workload=args.workload, path=args.path, concurrency=args.concurrency,
            rate=args.rate, duration=args.duration, count=args.count, config=config,
        )  # fmt: skip
    finally:
        labkit.close_engines()
    summary = result.summary()
    if args.save:
        result.save(args.save)
    if args.json:
        records = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in summary.to_dict(orient="records")
        ]
        print_json({"summary": records, "metadata": result.metadata})
    else:
        print(summary.round(1).to_string(index=False))
    from labkit.bench.failures import BenchmarkFailed  # start-up time: labkit.bench loads pandas

    try:
        result.check(max_error_share=args.max_error_share)
    except BenchmarkFailed as failed:
        print(f"error: {failed}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    bench = subparsers.add_parser("bench", parents=[lab_flags()], help="latency benchmark of writer and reader")
    bench.add_argument("--target", action="append", help="writer (default), reader or a DB instance; repeatable")
    bench.add_argument(
        "--path", default="tunnel", choices=("tunnel", "direct"), help="through the tunnel or from inside"
    )
    workload = bench.add_argument("--workload", default="point", help="what each request does")
    # Set after add_argument, which would otherwise list the choices (and import pandas) at once.
    workload.choices = _WorkloadNames()
    bench.add_argument("--concurrency", type=int, default=1, help="workers, each with its own connection")
    bench.add_argument(
        "--rate", type=positive_number, default=None, help="fixed rate in requests/s (default: closed loop)"
    )
    amount = bench.add_mutually_exclusive_group()
    amount.add_argument("--duration", type=positive_number, default=None, help="seconds to measure per target")
    amount.add_argument("--count", type=int, default=None, help="requests to measure per target (default 1000)")
    bench.add_argument(
        "--save", type=output_prefix, default=None, help="write every sample to PATH.csv and the metadata to PATH.json"
    )
    bench.add_argument("--json", action="store_true", help="print the summary as JSON (latencies in microseconds)")
    bench.add_argument(
        "--max-error-share", type=float, default=0.01,
        help="exit 1 when more than this share of the requests failed (default 0.01)",
    )  # fmt: skip
    bench.set_defaults(handler=_bench)
