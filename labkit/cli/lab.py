"""`labkit plan | up | down | status`: the lab's whole life from a terminal.

`register(subparsers)` adds the four subcommands to the `labkit` parser; each handler takes the parsed
arguments and returns the exit code. A bad value prints the LabkitError (what, field, fix) on stderr and
exits 2 before any AWS call; nothing is ever shown as a traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import labkit
from labkit.cli import options
from labkit.cli.exits import EXIT_FAILED, EXIT_OK, RESUME_HINT, Handler, handles_errors
from labkit.cli.options import add_config_arguments, config_from_args, print_json
from labkit.errors import LabkitError


def register(subparsers: Any) -> None:
    """Add `plan`, `up`, `down` and `status` to a `labkit` parser's subparsers (each sets `handler`)."""
    commands: list[tuple[str, Handler, str]] = [
        ("plan", run_plan, "show what `up` would create, and the dependency graph; changes nothing"),
        ("up", run_up, "create whatever the lab is missing, in dependency order (resumes after a failure)"),
        ("down", run_down, "delete every resource of this lab and learner, then prove nothing is left"),
        ("status", run_status, "list the lab resources that exist now"),
    ]
    for name, handler, summary in commands:
        parser = subparsers.add_parser(name, help=summary, description=summary)
        add_config_arguments(parser)
        parser.set_defaults(handler=handler)


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


# ----- the four handlers -----


@handles_errors(interrupted=RESUME_HINT)
def run_plan(args: argparse.Namespace) -> int:
    from labkit.display import say, show  # start-up time: labkit.display loads pandas

    config = config_from_args(args)
    result = labkit.plan(config, options.backend_for(config))
    if args.json:
        print_json(result.to_dict())
        return EXIT_OK
    schedule = result.schedule()
    say(result.banner)
    show(result, sys.stdout)
    if schedule["sequential"]:
        say(
            f"schedule: {schedule['critical_path']} waits on the critical path instead of {schedule['sequential']} in a row"
        )
    return EXIT_OK


@handles_errors(interrupted=RESUME_HINT)
def run_up(args: argparse.Namespace) -> int:
    from labkit.display import say, show  # start-up time: labkit.display loads pandas

    config = config_from_args(args)
    backend = options.backend_for(config)
    before = labkit.plan(config, backend)
    if not before.nothing_to_do and not _confirm(args, f"{before.summary()} in {before.banner}. Go ahead?"):
        say("cancelled: nothing changed", sys.stderr)
        return EXIT_FAILED
    saved = config.save()
    say(f"config saved to {saved}", _progress_stream(args))
    result = labkit.apply(config, backend, stream=_progress_stream(args))
    if args.json:
        print_json(result.to_dict())
    else:
        show(result.to_frame(), sys.stdout)
    return EXIT_OK


@handles_errors(interrupted=RESUME_HINT)
def run_down(args: argparse.Namespace) -> int:
    from labkit.display import say, show  # start-up time: labkit.display loads pandas

    config = config_from_args(args)
    backend = options.backend_for(config)
    existing = labkit.status(config, backend)
    question = f"delete {len(existing)} resources of lab {config.lab}, learner {config.learner} in {backend.banner()}?"
    if not existing.empty and not _confirm(args, question):
        say("cancelled: nothing deleted", sys.stderr)
        return EXIT_FAILED
    remaining = labkit.destroy(config, backend, stream=_progress_stream(args))
    if args.json:
        print_json({"remaining": remaining.to_dict(orient="records")})
    elif remaining.empty:
        say("verified: no resource of this lab and learner is left")
    else:
        show(remaining, sys.stdout)
    return EXIT_OK if remaining.empty else EXIT_FAILED


@handles_errors(interrupted=RESUME_HINT)
def run_status(args: argparse.Namespace) -> int:
    from labkit.display import show  # start-up time: labkit.display loads pandas

    config = config_from_args(args)
    frame = labkit.status(config, options.backend_for(config))
    if args.json:
        print_json(frame.to_dict(orient="records"))
    else:
        show(frame, sys.stdout)
    return EXIT_OK
