"""`labkit run-notebooks`: execute the workbook headless, in order, and print which notebook failed where."""

from __future__ import annotations

import argparse

import labkit
from labkit.cli.exits import EXIT_BAD_INPUT, handles_errors
from labkit.cli.options import config_from_args, lab_flags, positive_number, print_json
from labkit.config import LabConfig


@handles_errors(failed=EXIT_BAD_INPUT)
def _run(args: argparse.Namespace) -> int:
    from labkit.aws.backend import backend_from_env  # start-up time: boto3; `labkit --help` reads this module

    config = config_from_args(args)
    # --backend, else LABKIT_BACKEND, else the sandbox: the aws backend is never chosen by a config file alone
    backend = args.backend or backend_from_env() or "sandbox"
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    if backend == "aws":
        print("running the workbook against your AWS account: it creates and deletes a whole lab", flush=True)
    summary = labkit.run_notebooks(
        args.notebooks, out=args.out, backend=backend, config=config, only=only, timeout=args.timeout,
        keep_going=args.keep_going,
    )  # fmt: skip
    if args.json:
        print_json(summary.to_dict())
    else:
        print(summary)
    return 0 if summary.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run-notebooks` subcommand."""
    run = subparsers.add_parser(
        "run-notebooks", parents=[lab_flags()], help="execute the workbook headless, in order, and summarize"
    )
    run.add_argument("--notebooks", default="notebooks", help="the folder of NN_name.ipynb notebooks")
    run.add_argument("--out", default=None, help="where the executed copies and summary go (default: under the home)")
    run.add_argument("--only", default=None, help="comma-separated names, e.g. 00_setup,01_network (90_instructor too)")
    run.add_argument("--timeout", type=positive_number, default=900.0, help="seconds a cell may take")
    run.add_argument("--keep-going", action="store_true", help="run the rest after a notebook fails")
    run.add_argument("--engine", default=None, help=LabConfig.engine_help())
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(handler=_run)
