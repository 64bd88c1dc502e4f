"""`labkit plan | up | down | status`: the lab's whole life from a terminal.

`register(subparsers)` adds the four subcommands to the `labkit` parser; each handler takes the parsed
arguments and returns the exit code. A bad value prints the LabkitError (what, field, fix) on stderr and
exits 2 before any AWS call; nothing is ever shown as a traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from labkit.aws.backend import Backend
from labkit.config import LabConfig, field_names
from labkit.display import say, show
from labkit.errors import ConfigError, LabkitError
from labkit.lab.apply import apply, destroy, status
from labkit.lab.plan import plan

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
BOOL_FIELDS = ("key_pair", "deletion_protection")
FIELD_HELP = {
    "lab": "lab name, the first part of every resource name (default auroralab)",
    "learner": "learner name, the second part of every resource name (default learner1)",
    "region": "AWS region code (default us-east-1)",
    "backend": "sandbox (local, free; the default) or aws (your real account)",
    "vpc": "'create' (default), 'default' (the region's default VPC) or an existing VPC id",
    "vpc_cidr": "IPv4 block of a created VPC (default 10.42.0.0/16)",
    "engine_version": "Aurora MySQL 3 version (default 8.0.mysql_aurora.3.08.0)",
    "db_instance_class": "class of the writer and readers (default db.t4g.medium)",
    "readers": "number of reader instances, 0 to 15 (default 1)",
    "instance_type": "EC2 instance type (default t3.micro)",
    "ssh_cidr": "allow SSH from this one address (a /32); 'none' for no SSH (the default)",
    "key_pair": "create a key pair and keep its private key under the labkit home",
    "deletion_protection": "protect the cluster from deletion (destroy turns it off first)",
}


def backend_for(config: LabConfig) -> Backend:
    """The backend the handlers use (tests replace this to use in-process moto)."""
    return config.make_backend()


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The lab config as flags (`--db-instance-class db.t4g.medium`), plus --config, --yes and --json."""
    group = parser.add_argument_group("lab config (flags override the config file)")
    for name in field_names():
        flag = "--" + name.replace("_", "-")
        if name in BOOL_FIELDS:
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=FIELD_HELP[name]
            )
        else:
            group.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=FIELD_HELP[name])
    parser.add_argument(
        "--config", metavar="FILE", help="TOML lab config to start from (default: LABKIT_HOME/lab.toml)"
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts, CI)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (progress goes to stderr)")


def register(subparsers: Any) -> None:
    """Add `plan`, `up`, `down` and `status` to a `labkit` parser's subparsers (each sets `handler`)."""
    commands: list[tuple[str, Callable[[argparse.Namespace], int], str]] = [
        ("plan", run_plan, "show what `up` would create, and the dependency graph; changes nothing"),
        ("up", run_up, "create whatever the lab is missing, in dependency order (resumes after a failure)"),
        ("down", run_down, "delete every resource of this lab and learner, then prove nothing is left"),
        ("status", run_status, "list the lab resources that exist now"),
    ]
    for name, handler, summary in commands:
        parser = subparsers.add_parser(name, help=summary, description=summary)
        add_config_arguments(parser)
        parser.set_defaults(handler=handler)


def config_from_args(args: argparse.Namespace) -> LabConfig:
    """The config file (or the home's lab.toml, or the defaults), overridden by any flags given."""
    base = LabConfig.load(args.config).to_dict()
    flags = {name: getattr(args, name) for name in field_names() if getattr(args, name, None) is not None}
    return LabConfig.from_mapping({**base, **flags}, source="the command line")


def _handle(args: argparse.Namespace, action: Callable[[argparse.Namespace, LabConfig], int]) -> int:
    try:
        return action(args, config_from_args(args))
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: run the same command again, it picks up where it stopped", file=sys.stderr)
        return EXIT_INTERRUPTED


def _progress_stream(args: argparse.Namespace) -> Any:
    return sys.stderr if args.json else sys.stdout


def _confirm(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        raise LabkitError(
            "refusing to change the account without confirmation", field="--yes", fix="add --yes to confirm"
        )
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# ----- the four handlers -----


def run_plan(args: argparse.Namespace) -> int:
    return _handle(args, _plan)


def _plan(args: argparse.Namespace, config: LabConfig) -> int:
    result = plan(config, backend_for(config))
    if args.json:
        _print_json(result.to_dict())
        return EXIT_OK
    schedule = result.schedule()
    say(result.banner)
    show(result, sys.stdout)
    if schedule["sequential"]:
        say(
            f"schedule: {schedule['critical_path']} waits on the critical path instead of {schedule['sequential']} in a row"
        )
    return EXIT_OK


def run_up(args: argparse.Namespace) -> int:
    return _handle(args, _up)


def _up(args: argparse.Namespace, config: LabConfig) -> int:
    backend = backend_for(config)
    before = plan(config, backend)
    if not before.nothing_to_do and not _confirm(args, f"{before.summary()} in {before.banner}. Go ahead?"):
        say("cancelled: nothing changed", sys.stderr)
        return EXIT_FAILED
    saved = config.save()
    say(f"config saved to {saved}", _progress_stream(args))
    result = apply(config, backend, stream=_progress_stream(args))
    if args.json:
        _print_json(result.to_dict())
    else:
        show(result.to_frame(), sys.stdout)
    return EXIT_OK


def run_down(args: argparse.Namespace) -> int:
    return _handle(args, _down)


def _down(args: argparse.Namespace, config: LabConfig) -> int:
    backend = backend_for(config)
    existing = status(config, backend)
    question = f"delete {len(existing)} resources of lab {config.lab}, learner {config.learner} in {backend.banner()}?"
    if not existing.empty and not _confirm(args, question):
        say("cancelled: nothing deleted", sys.stderr)
        return EXIT_FAILED
    remaining = destroy(config, backend, stream=_progress_stream(args))
    if args.json:
        _print_json({"remaining": remaining.to_dict(orient="records")})
    elif remaining.empty:
        say("verified: no resource of this lab and learner is left")
    else:
        show(remaining, sys.stdout)
    return EXIT_OK if remaining.empty else EXIT_FAILED


def run_status(args: argparse.Namespace) -> int:
    return _handle(args, _status)


def _status(args: argparse.Namespace, config: LabConfig) -> int:
    frame = status(config, backend_for(config))
    if args.json:
        _print_json(frame.to_dict(orient="records"))
    else:
        show(frame, sys.stdout)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run one of the four subcommands on its own (the `labkit` CLI wires them in with `register`)."""
    parser = argparse.ArgumentParser(prog="labkit", description="provision and tear down the Aurora + EC2 lab")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
