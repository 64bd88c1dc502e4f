"""The options `labkit` commands share, and what they become: a LabConfig, a backend, JSON on stdout.

Two sets of flags: the lab flags (--config --lab --learner --region --backend) of the commands that look at
an existing lab, and the config flags of plan/up/down/status and `class check`, generated from LabConfig's
fields (each field's help is its metadata), so a new config field gets its flag without an edit here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.cli.exits import EXIT_FAILED, EXIT_OK
from labkit.config import LabConfig, bool_fields, field_names
from labkit.engines import engine_of
from labkit.errors import ConfigError
from labkit.inputs import check_output_folder

if TYPE_CHECKING:
    from labkit.aws.backend import Backend

# labkit.aws.backend.BACKENDS, spelled out because importing it loads boto3 (a test keeps the two equal).
BACKEND_CHOICES = ("sandbox", "aws")


def lab_flags() -> argparse.ArgumentParser:
    """A parent parser with the flags that name a lab: --config, --lab, --learner, --region, --backend."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("lab")
    group.add_argument("--config", default=None, help="lab config TOML (default: the home's lab.toml)")
    group.add_argument("--lab", default=None, help="lab name (labkit:lab tag)")
    group.add_argument("--learner", default=None, help="learner name (labkit:learner tag)")
    group.add_argument("--region", default=None, help="AWS region")
    group.add_argument("--backend", default=None, choices=BACKEND_CHOICES, help="where the lab lives")
    return flags


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Every LabConfig field as a flag (`--db-instance-class X`, `--key-pair/--no-key-pair`), plus --config,
    --yes and --json. A flag left out stays None, so the config file's value wins."""
    group = parser.add_argument_group("lab config (flags override the config file)")
    for field in dataclasses.fields(LabConfig):
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help")
        if field.name in bool_fields():
            group.add_argument(
                flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            group.add_argument(flag, dest=field.name, default=None, metavar=field.name.upper(), help=help_text)
    parser.add_argument(
        "--config", metavar="FILE", help="TOML lab config to start from (default: LABKIT_HOME/lab.toml)"
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts, CI)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (progress goes to stderr)")


def config_from_args(args: argparse.Namespace) -> LabConfig:
    """The config file (or the home's lab.toml, or the defaults), overridden by any config flag given.

    Works for both flag sets: a field without a flag on this command is simply not overridden.
    """
    base = LabConfig.load(args.config).to_dict()
    flags = {name: getattr(args, name) for name in field_names() if getattr(args, name, None) is not None}
    return LabConfig.from_mapping({**base, **flags}, source="the command line")


def backend_for(config: LabConfig) -> Backend:
    """The backend a command works on (the one place tests replace to run on in-process moto)."""
    return config.make_backend()


def print_json(data: Any, *, sort_keys: bool = False) -> None:
    """What --json prints: indented, with anything JSON lacks (dates, paths) as text."""
    print(json.dumps(data, indent=2, default=str, sort_keys=sort_keys))


def print_report(report: Any, as_json: bool) -> int:
    """Print a report with an `ok` (its `to_dict()` for --json, else its text) and return the exit code it
    earns: `class learners` and `class hub-learners` print theirs the same way."""
    if as_json:
        print_json(report.to_dict())
    else:
        print(report)
    return EXIT_OK if report.ok else EXIT_FAILED


# ----- argparse types: a bad value is refused while parsing, before any work, naming the flag and the fix -----


def tcp_port(text: str) -> int:
    """`--port`: a TCP port, 1 to 65535 (0, -1 or 70000 would otherwise reach the engine and get a rule suggested)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port number; use 1 to 65535, e.g. {engine_of().port}"
        ) from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port; use 1 to 65535, e.g. {engine_of().port}")
    return port


def positive_number(text: str) -> float:
    """`--rate`, `--duration`: a finite number above zero (`inf` or `nan` would give a NaN summary)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; use e.g. 500") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number above 0; use e.g. 500")
    return value


def output_prefix(text: str) -> str:
    """`--save PATH`: files PATH.csv and PATH.json can be written, checked before a run that may take minutes."""
    path = Path(text).expanduser()
    folder = path.parent
    if not text.strip() or path.name in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} names no file; use e.g. results/run1 (writes run1.csv, run1.json)")
    if path.is_dir():  # PATH names the files' prefix: DIR.csv would land beside the folder, not in it
        raise argparse.ArgumentTypeError(
            f"{text} is a folder; --save takes a path without extension: use e.g. {path / 'run1'} "
            f"(writes {path / 'run1.csv'} and {path / 'run1.json'})"
        )
    try:
        check_output_folder(folder, field="--save", example="results/run1")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message}; {exc.fix}") from None
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist; create it first or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"folder {folder} is not writable; choose a path under your home")
    return text
