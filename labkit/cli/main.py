"""The `labkit` command: the same operations as the Python API, for terminals and scripts.

This module only builds the parser and dispatches. Each command group is a module with a
`register(subparsers)`; each handler turns its own errors into an exit code (`labkit.cli.exits`).
Building the parser imports no pandas or boto3, so `labkit --help` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from labkit.cli import bench, classroom, lab, run, sandbox, security, sql

# The command groups, in the order `labkit --help` lists them.
COMMAND_MODULES = (sandbox, lab, security, sql, bench, classroom, run)


def build_parser() -> argparse.ArgumentParser:
    """The `labkit` parser with every command group's subcommands."""
    parser = argparse.ArgumentParser(prog="labkit", description="Aurora MySQL + EC2 lab toolkit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand's handler; its return value is the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
