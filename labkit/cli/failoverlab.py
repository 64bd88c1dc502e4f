"""`labkit failover-lab`: the client strategies through the same failures, from a terminal (or JSON for scripts).

The same function as the notebook's (`labkit.failover_lab`): each strategy's loop writes while the lab makes a
planned failover, a writer crash and a reboot without failover. Exits 1 when an acknowledged write was lost.
"""

from __future__ import annotations

import argparse
import math

from labkit.cli.exits import EXIT_FAILED, EXIT_OK, handles_errors
from labkit.cli.options import config_from_args, lab_flags, positive_number, print_json

STRATEGY_NAMES = (
    "naive",
    "backoff",
    "pool",
    "topology",
    "wrapper",
)  # labkit.failover_lab.STRATEGIES (pandas: not at --help)
DEFAULT_NAMES = STRATEGY_NAMES[:4]  # labkit.failover_lab.DEFAULT_STRATEGIES: the wrapper only when asked for
FAILURE_NAMES = ("planned", "crash", "reboot")


@handles_errors()
def _failover_lab(args: argparse.Namespace) -> int:
    from labkit.failover_lab import failover_lab  # pandas and the drivers: only when the command runs

    config = config_from_args(args)
    result = failover_lab(
        tuple(args.strategy or DEFAULT_NAMES), tuple(args.failure or FAILURE_NAMES), runs=args.runs,
        after=args.after, seed=args.seed, config=config,
    )  # fmt: skip
    if args.json:
        print_json(_without_nan(result.to_json()))
    else:
        print(repr(result))
    return EXIT_FAILED if result.lost() else EXIT_OK


def _without_nan(data: object) -> object:
    """JSON has no NaN: a measure that does not exist (no read seen) is null."""
    if isinstance(data, dict):
        return {key: _without_nan(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_without_nan(value) for value in data]
    return None if isinstance(data, float) and math.isnan(data) else data


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `failover-lab` subcommand."""
    command = subparsers.add_parser(
        "failover-lab", parents=[lab_flags()],
        help="run the client strategies through a planned failover, a writer crash and a reboot, side by side",
    )  # fmt: skip
    command.add_argument(
        "--strategy",
        action="append",
        choices=STRATEGY_NAMES,
        help="a strategy (repeat; default all but wrapper: AWS's Advanced Python Wrapper, Aurora PostgreSQL only)",
    )
    command.add_argument("--failure", action="append", choices=FAILURE_NAMES, help="a failure (repeat; default all)")
    command.add_argument("--runs", type=int, default=1, help="runs of each failure (default 1; the medians are shown)")
    command.add_argument("--after", type=positive_number, default=15.0,
                         help="seconds the strategies keep writing after a failure, at most (default 15)")  # fmt: skip
    command.add_argument("--seed", type=int, default=None, help="the random order of the strategies, repeatable")
    command.add_argument("--json", action="store_true", help="print the table, the runs and the conclusion as JSON")
    command.set_defaults(handler=_failover_lab)
