"""`labkit sandbox up | down | status | reset | env`: the embedded sandbox from a terminal.

Exit codes: 3 when the sandbox is not running (`status`, `env`, as every labkit command that needs it); any
other labkit error exits 2; `reset` (and `down --forget`) without `--yes` outside a terminal, or answered "no",
exits 1; 0 otherwise.

The sandbox keeps the lab across `down` and `up`; `reset` and `down --forget` are the only commands that
delete it, so they ask first (or need `--yes`).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys

import labkit
from labkit.cli.exits import EXIT_BAD_INPUT, EXIT_NO_SANDBOX, Handler, handles_errors
from labkit.cli.options import print_json
from labkit.errors import SandboxError

NAME_PATTERN = re.compile(r"[A-Z_][A-Z0-9_]*")


@handles_errors(failed=EXIT_BAD_INPUT)
def _up(args: argparse.Namespace) -> int:
    state = labkit.sandbox.up(region=args.region)
    if args.json:
        print_json(labkit.sandbox.status())
    else:
        print(f"sandbox ready: AWS API at {state.endpoint_url}, region {state.region}")
        print(
            'explore it with the AWS CLI:  eval "$(labkit sandbox env)"  then  aws --endpoint-url "$AWS_ENDPOINT_URL" rds describe-db-clusters'
        )
    return 0


def _confirmed(args: argparse.Namespace, what: str) -> bool:
    """True with --yes, or when a person at a terminal types yes; a script without --yes is refused."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(f"refusing to {what} without confirmation: add --yes", file=sys.stderr)
        return False
    answer = input(f"This will {what}. Type yes to go on: ")
    return answer.strip().lower() == "yes"


@handles_errors(failed=EXIT_BAD_INPUT)
def _down(args: argparse.Namespace) -> int:
    if args.forget and not _confirmed(args, "delete every AWS resource and database of the sandbox"):
        return 1
    if not labkit.sandbox.down(quiet=True, forget=args.forget):
        print("sandbox was not running" + ("; its saved lab is deleted" if args.forget else ""))
    elif not args.json:
        kept = "the lab is deleted" if args.forget else "the lab is kept: `labkit sandbox up` brings it back"
        print(f"sandbox down: no process and no port left behind; {kept}")
    return 0


@handles_errors(failed=EXIT_BAD_INPUT)
def _status(args: argparse.Namespace) -> int:
    info = labkit.sandbox.status()
    if args.json:
        print_json(info, sort_keys=True)
        return 0 if info["running"] else EXIT_NO_SANDBOX
    if not info["running"]:
        print(f"sandbox: not running (home {info['home']}); start it with `labkit sandbox up`")
        return EXIT_NO_SANDBOX
    print(f"sandbox: running, AWS API {info['endpoint_url']}, region {info['region']}, home {info['home']}")
    rows = [(n, i["role"], i["status"], i["port"], i["endpoint"]) for n, i in info["instances"].items()]
    if rows:
        import pandas as pd  # start-up time: `labkit --help` must not load pandas

        print(pd.DataFrame(rows, columns=["instance", "role", "status", "port", "endpoint"]).to_string(index=False))
    else:
        print("no DB instances")
    return 0


@handles_errors(failed=EXIT_BAD_INPUT)
def _reset(args: argparse.Namespace) -> int:
    if not _confirmed(args, "delete every AWS resource and database of the sandbox"):
        return 1
    labkit.sandbox.reset()
    print("sandbox reset: no AWS resources, no databases")
    return 0


def export_lines(exports: dict[str, str]) -> list[str]:
    """`export NAME=value` lines a POSIX shell can eval: names checked, values shell-quoted."""
    for name in exports:
        if not NAME_PATTERN.fullmatch(name):
            raise SandboxError(f"{name!r} is not an environment variable name", field="sandbox env", fix="report it")
    return [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]


@handles_errors(failed=EXIT_BAD_INPUT)
def _env(args: argparse.Namespace) -> int:
    lines = export_lines(labkit.sandbox.env_exports(args.region))  # every value checked before any is printed
    print("\n".join(lines))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `sandbox` with `up`, `down`, `status`, `reset` and `env`."""
    sandbox = subparsers.add_parser("sandbox", help="the embedded sandbox: local AWS API + real database servers")
    actions = sandbox.add_subparsers(dest="action", required=True)
    commands: dict[str, tuple[str, Handler]] = {
        "up": ("start the sandbox (or reuse the running one)", _up),
        "down": ("stop the sandbox, keeping the lab; no process or port left behind", _down),
        "status": ("is it running; its endpoint, region and databases", _status),
        "reset": ("delete every AWS resource and database (asks, or --yes)", _reset),
        "env": ("print shell exports that point the AWS CLI and boto3 at the sandbox", _env),
    }
    for name, (help_text, handler) in commands.items():
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--region", default=None, help="AWS region the sandbox reports (default us-east-1)")
        if name in ("down", "reset"):
            parser.add_argument("--yes", action="store_true", help="delete without asking")
        if name == "down":
            parser.add_argument("--forget", action="store_true", help="also delete the lab (asks, or --yes)")
        parser.set_defaults(handler=handler)
