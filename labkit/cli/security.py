"""`labkit rules`, `labkit lint` and `labkit reach`: the security views for terminals and scripts.

Exit codes: `lint` returns 1 when any finding is high severity, `reach` returns 1 when the path is blocked
(so instructors can script them); 0 otherwise.
"""

from __future__ import annotations

import argparse
from typing import Any

LAB_FLAGS = ("lab", "learner", "region", "backend")


def _lab_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("lab")
    group.add_argument("--config", default=None, help="lab config TOML (default: the home's lab.toml)")
    group.add_argument("--lab", default=None, help="lab name (labkit:lab tag)")
    group.add_argument("--learner", default=None, help="learner name (labkit:learner tag)")
    group.add_argument("--region", default=None, help="AWS region")
    group.add_argument("--backend", default=None, choices=("sandbox", "aws"), help="where the lab lives")
    return flags


def config_from_args(args: argparse.Namespace) -> Any:
    """The lab config: the config file (or defaults) with any --lab/--learner/--region/--backend applied."""
    from labkit.config import LabConfig

    base = LabConfig.load(args.config)
    overrides = {name: getattr(args, name) for name in LAB_FLAGS if getattr(args, name, None) is not None}
    return LabConfig.from_mapping({**base.to_dict(), **overrides}) if overrides else base


def _rules(args: argparse.Namespace) -> int:
    from labkit.security import security_groups

    config = config_from_args(args)
    frame = security_groups(config, group_ids=args.group_id or None)
    if frame.empty:
        print(f"no security-group rules found for lab {config.lab!r}, learner {config.learner!r}")
        return 0
    print(frame.to_string(index=False))
    return 0


def _lint(args: argparse.Namespace) -> int:
    from labkit.security import lint

    report = lint(config_from_args(args))
    print(report)
    return 1 if report.high else 0


def _reach(args: argparse.Namespace) -> int:
    from labkit.security import can_reach

    verdict = can_reach(args.source, args.destination, args.port, config_from_args(args))
    print(verdict)
    return 0 if verdict.reachable else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `rules`, `lint` and `reach` subcommands; each sets `handler(args) -> exit code`."""
    flags = _lab_flags()
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
    reach.add_argument("--port", type=int, default=3306, help="TCP port (default 3306)")
    reach.set_defaults(handler=_reach)
