"""`labkit sandbox up | down | status | reset | env`: the embedded sandbox from a terminal.

Exit codes: `status` returns 1 when the sandbox is not running; any labkit error exits 2; 0 otherwise.
"""

from __future__ import annotations

import argparse
import re
import shlex

import labkit
from labkit.cli.exits import EXIT_BAD_INPUT, Handler, handles_errors
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


@handles_errors(failed=EXIT_BAD_INPUT)
def _down(args: argparse.Namespace) -> int:
    if not labkit.sandbox.down(quiet=True):
        print("sandbox was not running")
    elif not args.json:
        print("sandbox down: no process and no port left behind")
    return 0


@handles_errors(failed=EXIT_BAD_INPUT)
def _status(args: argparse.Namespace) -> int:
    info = labkit.sandbox.status()
    if args.json:
        print_json(info, sort_keys=True)
        return 0 if info["running"] else 1
    if not info["running"]:
        print(f"sandbox: not running (home {info['home']})")
        return 1
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
    sandbox = subparsers.add_parser("sandbox", help="the embedded sandbox: local AWS API + real MariaDB")
    actions = sandbox.add_subparsers(dest="action", required=True)
    commands: dict[str, tuple[str, Handler]] = {
        "up": ("start the sandbox (or reuse the running one)", _up),
        "down": ("stop the sandbox; no process or port left behind", _down),
        "status": ("is it running; its endpoint, region and databases", _status),
        "reset": ("wipe every AWS resource and database, keep it running", _reset),
        "env": ("print shell exports that point the AWS CLI and boto3 at the sandbox", _env),
    }
    for name, (help_text, handler) in commands.items():
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--region", default=None, help="AWS region the sandbox reports (default us-east-1)")
        parser.set_defaults(handler=handler)
