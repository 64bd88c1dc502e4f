"""`labkit release-notebooks`: write the learner's copies of the workbook, the solutions taken out."""

from __future__ import annotations

import argparse

from labkit.cli.exits import handles_errors


@handles_errors()
def _release(args: argparse.Namespace) -> int:
    from labkit.workbook.release import release_notebooks  # nbformat: only for this command

    print(release_notebooks(args.out, source=args.source, names=args.only.split(",") if args.only else None))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `release-notebooks` subcommand."""
    release = subparsers.add_parser(
        "release-notebooks",
        help="write the learner's copies of the notebooks, each solution replaced by a 'your turn' placeholder",
    )
    release.add_argument(
        "--out", default=None, help="the folder (default: notebooks/ in the labkit home); existing copies are kept"
    )
    release.add_argument(
        "--from", dest="source", default=None, help="the solved notebooks (default: the repository's notebooks/)"
    )
    release.add_argument("--only", default=None, help="comma-separated names, e.g. 01_network,02_database")
    release.set_defaults(handler=_release)
