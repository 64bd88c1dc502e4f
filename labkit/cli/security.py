"""`labkit rules`, `labkit lint` and `labkit reach`: the security views for terminals and scripts.

Exit codes: `lint` returns 1 when any finding is high severity, `reach` returns 1 when the path is blocked
(so instructors can script them); 2 on any labkit error, such as an unknown name; 0 otherwise.
"""

from __future__ import annotations

import argparse

import labkit
from labkit.cli.exits import EXIT_BAD_INPUT, handles_errors
from labkit.cli.options import config_from_args, lab_flags, tcp_port
from labkit.engines import engine_of


@handles_errors(failed=EXIT_BAD_INPUT)
def _rules(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    frame = labkit.security_groups(config, group_ids=args.group_id or None)
    if frame.empty:
        print(f"no security-group rules found for lab {config.lab!r}, learner {config.learner!r}")
        return 0
    print(frame.to_string(index=False))
    return 0


@handles_errors(failed=EXIT_BAD_INPUT)
def _lint(args: argparse.Namespace) -> int:
    report = labkit.lint(config_from_args(args))
    print(report)
    return 1 if report.high else 0


@handles_errors(failed=EXIT_BAD_INPUT)
def _reach(args: argparse.Namespace) -> int:
    verdict = labkit.can_reach(args.source, args.destination, args.port, config_from_args(args))
    print(verdict)
    return 0 if verdict.reachable else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `rules`, `lint` and `reach` subcommands; each sets `handler(args) -> exit code`."""
    flags = lab_flags()
    rules = subparsers.add_parser("rules", parents=[flags], help="the lab's security-group rules as a table")
    rules.add_argument("--group-id", action="append", help="show these groups instead (repeatable)")
    rules.set_defaults(handler=_rules)

    lint = subparsers.add_parser("lint", parents=[flags], help="security findings; exit 1 on any high one")
    lint.set_defaults(handler=_lint)

    reach = subparsers.add_parser(
        "reach", parents=[flags], help="can SOURCE reach DESTINATION on a port; exit 1 when blocked"
    )
    reach.add_argument("source", help="instance, writer, reader, internet, an instance id, endpoint or IP")
    reach.add_argument("destination", help="instance, writer, reader, internet, an instance id, endpoint or IP")
    reach.add_argument(
        "--port", type=tcp_port, default=None, help=f"TCP port, 1 to 65535 (default {engine_of().port})"
    )  # None: the lab engine's port, once the config is read
    reach.set_defaults(handler=_reach)
