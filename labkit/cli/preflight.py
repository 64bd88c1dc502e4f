"""`labkit preflight`: prove, read-only, that the lab will run in this account before anything is created.

One line per check (pass / warn / fail, and the fix); `--json` for scripts. Exit 0 when nothing failed, 1 when a
check failed, 2 on a bad input (before any AWS call).
"""

from __future__ import annotations

import argparse
from typing import Any

from labkit.cli import options
from labkit.cli.exits import handles_errors
from labkit.cli.options import add_config_arguments, config_from_args, print_json


def register(subparsers: Any) -> None:
    """Add `preflight` to a `labkit` parser's subparsers."""
    summary = "check, changing nothing, that the lab will run here: credentials, permissions, engine, quotas, cost"
    parser = subparsers.add_parser("preflight", help=summary, description=summary)
    add_config_arguments(parser)
    parser.set_defaults(handler=run_preflight)


@handles_errors()
def run_preflight(args: argparse.Namespace) -> int:
    from labkit.display import say  # start-up time: labkit.display loads pandas
    from labkit.lab.preflight import preflight  # start-up time: boto3

    config = config_from_args(args)
    report = preflight(config, options.backend_for(config))
    if args.json:
        print_json(report.to_dict())
    else:
        for line in report.lines():
            say(line)
    return report.exit_code
