"""The `labkit` command: the same operations as the Python API, for terminals and scripts."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence

from labkit.errors import LabkitError

# Modules that add their own subcommands with a `register(subparsers)` function.
COMMAND_MODULES = (
    "labkit.cli.lab",
    "labkit.cli.security",
    "labkit.cli.sql",
    "labkit.cli.bench",
    "labkit.cli.classroom",
    "labkit.cli.run",
)


def _sandbox_up(args: argparse.Namespace) -> int:
    from labkit import sandbox

    state = sandbox.up(region=args.region)
    if args.json:
        print(json.dumps(sandbox.status(), indent=2))
    else:
        print(f"sandbox ready: AWS API at {state.endpoint_url}, region {state.region}")
        print('explore it with the AWS CLI:  eval "$(labkit sandbox env)"  then  aws rds describe-db-clusters')
    return 0


def _sandbox_down(args: argparse.Namespace) -> int:
    from labkit import sandbox

    if not sandbox.down(quiet=True):
        print("sandbox was not running")
    elif not args.json:
        print("sandbox down: no process and no port left behind")
    return 0


def _sandbox_status(args: argparse.Namespace) -> int:
    from labkit import sandbox

    info = sandbox.status()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0 if info["running"] else 1
    if not info["running"]:
        print(f"sandbox: not running (home {info['home']})")
        return 1
    print(f"sandbox: running, AWS API {info['endpoint_url']}, region {info['region']}, home {info['home']}")
    rows = [(n, i["role"], i["status"], i["port"], i["endpoint"]) for n, i in info["instances"].items()]
    if rows:
        import pandas as pd

        print(pd.DataFrame(rows, columns=["instance", "role", "status", "port", "endpoint"]).to_string(index=False))
    else:
        print("no DB instances")
    return 0


def _sandbox_reset(args: argparse.Namespace) -> int:
    from labkit import sandbox

    sandbox.reset()
    print("sandbox reset: no AWS resources, no databases")
    return 0


def _sandbox_env(args: argparse.Namespace) -> int:
    from labkit import sandbox

    for name, value in sandbox.env_exports(args.region).items():
        print(f"export {name}={value}")
    return 0


def _add_sandbox(subparsers: argparse._SubParsersAction) -> None:
    sandbox = subparsers.add_parser("sandbox", help="the embedded sandbox: local AWS API + real MariaDB")
    actions = sandbox.add_subparsers(dest="action", required=True)
    commands: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "up": ("start the sandbox (or reuse the running one)", _sandbox_up),
        "down": ("stop the sandbox; no process or port left behind", _sandbox_down),
        "status": ("is it running; its endpoint, region and databases", _sandbox_status),
        "reset": ("wipe every AWS resource and database, keep it running", _sandbox_reset),
        "env": ("print shell exports that point the AWS CLI and boto3 at the sandbox", _sandbox_env),
    }
    for name, (help_text, handler) in commands.items():
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--region", default=None, help="AWS region the sandbox reports (default us-east-1)")
        parser.set_defaults(handler=handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="Aurora MySQL + EC2 lab toolkit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_sandbox(subparsers)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
