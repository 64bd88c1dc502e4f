"""`labkit class hub-learners create | list | delete`: the learners of a one-machine JupyterHub.

Each learner is a real, unprivileged system account (labkit.hub.accounts): `create --names ada,grace` makes the
accounts and their hub users, with one 0600 password file each (never printed); `delete` stops everything a
learner runs and removes them. Both are dry runs without --yes, and need root to do anything. Exit codes: 0
done, 1 something was refused or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from labkit.cli.exits import EXIT_OK, handles_errors
from labkit.cli.options import print_json, print_report


def _hub(args: argparse.Namespace) -> Any:
    from labkit.hub.launch import STATE_DIR, HubClient  # start-up time: only hub-learners needs the hub's modules

    return HubClient.running(Path(args.hub_state) if args.hub_state else STATE_DIR)


@handles_errors()
def _create(args: argparse.Namespace) -> int:
    from labkit.hub import accounts  # start-up time: only hub-learners needs the hub's modules

    accounts.parse_names(args.names)  # bad input first
    hub = _hub(args) if args.yes else None
    return print_report(accounts.create(args.names, yes=args.yes, folder=args.dir, hub=hub), args.json)


@handles_errors()
def _delete(args: argparse.Namespace) -> int:
    from labkit.hub import accounts  # start-up time: only hub-learners needs the hub's modules

    if args.names:
        accounts.parse_names(args.names)
    hub = _hub(args) if args.yes else None
    return print_report(accounts.delete(args.names, yes=args.yes, folder=args.dir, hub=hub), args.json)


@handles_errors()
def _list(args: argparse.Namespace) -> int:
    from labkit.hub import accounts  # start-up time: only hub-learners needs the hub's modules

    names = accounts.learners()
    if args.json:
        print_json({"learners": names})
    else:
        print("\n".join(names) if names else f"no learner accounts (group {accounts.GROUP} is empty or missing)")
    return EXIT_OK


def register_hub_learners(actions: Any) -> None:
    """Add `hub-learners` with `create`, `list` and `delete` to `labkit class`."""
    parser = actions.add_parser("hub-learners", help="one-machine JupyterHub: learner system accounts (root)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for name, handler, help_text in (
        ("create", _create, "create each learner's account and hub sign-in (a dry run unless --yes)"),
        ("list", _list, "the learner accounts on this machine"),
        ("delete", _delete, "stop and delete learners' accounts, homes and sign-ins (a dry run unless --yes)"),
    ):
        verb = verbs.add_parser(name, help=help_text)
        verb.set_defaults(handler=handler)
        verb.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "list":
            continue
        verb.add_argument(
            "--names", required=name == "create", default=None, metavar="A,B,...",
            help="account names, comma-separated" + ("" if name == "create" else " (default: every learner)"),
        )  # fmt: skip
        verb.add_argument("--dir", default=None, help="the password files' folder (default: LABKIT_HOME/hub-learners)")
        verb.add_argument("--hub-state", default=None, help="the running hub's state folder (default: make hub's)")
        verb.add_argument("--yes", action="store_true", help=f"really {name} (without it: a dry run)")
