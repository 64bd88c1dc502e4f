"""`labkit plan | up | down | status`: the lab's whole life from a terminal.

`register(subparsers)` adds the four subcommands to the `labkit` parser; each handler takes the parsed
arguments and returns the exit code. A bad value prints the LabkitError (what, field, fix) on stderr and
exits 2 before any AWS call; nothing is ever shown as a traceback for a user mistake.

Flags act on this command only: the saved lab (the home's lab.toml, which the notebooks use) changes only with
`up --save`, so `labkit up --learner x` never turns every notebook towards another lab behind the learner's back.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import labkit
from labkit.cli import options
from labkit.cli.exits import EXIT_FAILED, EXIT_OK, RESUME_HINT, Handler, handles_errors
from labkit.cli.options import add_config_arguments, config_from_args, print_json
from labkit.config import LabConfig, field_names
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
        if name == "up":
            parser.add_argument(
                "--save", action="store_true",
                help="also make this the saved lab (the home's lab.toml, which the notebooks use)",
            )  # fmt: skip


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
    _save_or_say_why_not(config, args)
    result = labkit.apply(config, backend, stream=_progress_stream(args))
    if args.json:
        print_json(result.to_dict())
    else:
        show(result.to_frame(), sys.stdout)
    return EXIT_OK


def _save_or_say_why_not(config: LabConfig, args: argparse.Namespace) -> None:
    """With --save, this config becomes the saved lab; without, say so when it is not the saved lab."""
    from labkit.display import say  # start-up time: labkit.display loads pandas

    if args.save:
        say(f"config saved to {config.save()}: the notebooks use this lab now", _progress_stream(args))
        return
    saved = LabConfig.load()
    if saved != config:
        differs = ", ".join(f"{name}={getattr(config, name)!r}" for name in field_names()
                            if getattr(config, name) != getattr(saved, name))  # fmt: skip
        say(
            f"note: this lab differs from the saved one ({differs}); the saved lab in {LabConfig.default_path()} "
            f"(lab {saved.lab}, learner {saved.learner}), which the notebooks use, is unchanged: "
            "add --save to make this the saved lab",
            _progress_stream(args),
        )


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
