"""The `labkit` command: the same operations as the Python API, for terminals and scripts.

This module only builds the parser and dispatches. Each command group is a module with a
`register(subparsers)`; each handler turns its own errors into an exit code (`labkit.cli.exits`).
Building the parser imports no pandas or boto3, so `labkit --help` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The `labkit` parser with every command group's subcommands."""
    # Imported here, inside main's Ctrl-C guard: a Ctrl-C in the first tenth of a second is one line too.
    from labkit.cli import (
        bench,
        classroom,
        failoverlab,
        lab,
        preflight,
        release,
        run,
        sandbox,
        schema,
        security,
        sql,
    )

    parser = argparse.ArgumentParser(prog="labkit", description="Aurora (MySQL or PostgreSQL) + EC2 lab toolkit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (
        sandbox,
        preflight,
        lab,
        security,
        sql,
        schema,
        bench,
        failoverlab,
        classroom,
        run,
        release,
    ):  # the order `labkit --help` lists them
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand's handler; its return value is the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:  # before a handler's own guard (labkit.cli.exits) is in place
        print("interrupted: nothing was changed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
