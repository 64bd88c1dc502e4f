"""`labkit schema`: create the shop's tables on the lab's writer and load the sample rows, from a terminal.

The same as `labkit.create_schema()` (notebook 04): idempotent, so running it again changes nothing. The
benchmark's workloads read the `products` table it creates.
"""

from __future__ import annotations

import argparse

import labkit
from labkit.cli.exits import handles_errors
from labkit.cli.options import config_from_args, lab_flags


@handles_errors()
def _schema(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        counts = labkit.create_schema(args.products, config=config)
    finally:
        labkit.close_engines()
    print(counts.to_string(index=False))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `schema` subcommand."""
    schema = subparsers.add_parser(
        "schema", parents=[lab_flags()], help="create the shop schema on the writer (tables and sample rows)"
    )
    schema.add_argument("--products", type=int, default=100, help="sample products to load (default 100)")
    schema.set_defaults(handler=_schema)
