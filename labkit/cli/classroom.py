"""`labkit class setup | status | reset | check | progress | learners`: the instructor's commands.

`setup` is the account administrator's, once per account: every policy labkit ships (a dry run unless --yes).

`status` lists every learner's lab (all labs unless --lab) across the --region flags; `reset` is a dry
run unless --yes, and deletes only resources tagged with the lab and a chosen learner; `check` compares
what --learners N labs need with the account's quotas; `progress` shows which exercises each learner passed,
from the signed evidence in their homes (--homes) or the tags on their labs (--tags), and writes a CSV for a
gradebook (--csv); `learners create | list | delete` onboards a class
(IAM users tagged for isolation, one 0600 credentials file each, never printed) and removes it once its labs
are gone. Exit codes: 0 done, 1 something failed, was refused or does not fit, 2 bad input (the error names
the flag and the fix, before any AWS call).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import labkit
from labkit.cli import options
from labkit.cli.exits import EXIT_FAILED, EXIT_OK, handles_errors
from labkit.cli.hub import register_hub_learners
from labkit.cli.options import BACKEND_CHOICES, add_config_arguments, config_from_args, print_json, print_report
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.inputs import check_output_folder

if TYPE_CHECKING:
    from labkit.aws.backend import Backend


def backends_for(backend: str, regions: Sequence[str]) -> list[Backend]:
    """One backend per region (tests replace this to use in-process moto)."""
    from labkit.classroom.scan import class_backends  # start-up time: labkit.classroom loads pandas

    return class_backends(regions, backend)


def _class_flags(*, lab_help: str) -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("class")
    group.add_argument("--config", default=None, help="lab config TOML for defaults (default: the home's lab.toml)")
    group.add_argument("--lab", default=None, help=lab_help)
    group.add_argument("--learner", action="append", default=[], help="only this learner (repeatable)")
    group.add_argument("--region", action="append", default=[], help="a region to look in (repeatable)")
    group.add_argument("--backend", default=None, choices=BACKEND_CHOICES, help="where the labs live")
    flags.add_argument("--json", action="store_true", help="machine-readable output (progress goes to stderr)")
    return flags


def _class_scope(args: argparse.Namespace) -> tuple[LabConfig, list[Backend]]:
    base = LabConfig.load(args.config)
    regions = args.region or [base.region]
    return base, backends_for(args.backend or base.backend, regions)


@handles_errors()
def _status(args: argparse.Namespace) -> int:
    _, backends = _class_scope(args)
    result = labkit.class_status(lab=args.lab, learners=args.learner, backends=backends)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result)
    return EXIT_OK


@handles_errors()
def _reset(args: argparse.Namespace) -> int:
    from labkit.classroom.scan import check_names, parse_age  # start-up time: labkit.classroom loads pandas

    base = LabConfig.load(args.config)
    check_names(args.lab, args.learner)
    parse_age(args.older_than, field="--older-than")  # refuse bad input before any backend is made
    if args.report_dir:
        check_output_folder(args.report_dir, field="--report-dir", example="~/class-reports")
    _, backends = _class_scope(args)
    report = labkit.class_reset(
        lab=args.lab or base.lab,
        learners=args.learner,
        backends=backends,
        older_than=args.older_than,
        yes=args.yes,
        report_dir=args.report_dir,
        stream=sys.stderr if args.json else sys.stdout,
    )
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.table())
        for kind, path in report.files.items():
            print(f"report ({kind}): {path}")
        if report.dry_run:
            print("nothing was deleted: run again with --yes to delete the resources above")
    return EXIT_OK if report.dry_run or report.ok else EXIT_FAILED


@handles_errors()
def _check(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    report = labkit.class_check(args.learners, config, options.backend_for(config))
    if args.json:
        print_json(report.to_dict())
    else:
        print(report)
    return EXIT_OK if report.ok else EXIT_FAILED


@handles_errors()
def _progress(args: argparse.Namespace) -> int:
    from labkit.classroom.progress import class_progress, csv_path, find_homes  # start-up time: pandas
    from labkit.classroom.scan import check_names

    check_names(args.lab, args.learner)  # every bad input is refused before anything is read
    if args.long and not args.csv:
        raise ConfigError("--long shapes the CSV", field="--long", fix="add --csv FILE, or leave --long out")
    target = csv_path(args.csv, flag="--csv") if args.csv else None
    homes = find_homes(args.homes, flag="--homes")
    backends = _class_scope(args)[1] if args.tags else []
    result = class_progress(homes, tags=args.tags, lab=args.lab, learners=args.learner, backends=backends)
    if target is not None:
        written = result.write_csv(target, long=args.long)
        print(f"wrote {written} ({'one row per record' if args.long else 'one row per learner'})", file=sys.stderr)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result)
    return EXIT_OK


def _learners_backend(args: argparse.Namespace) -> tuple[LabConfig, list[Backend]]:
    base = LabConfig.load(args.config)
    return base, backends_for(args.backend or base.backend, args.region or [base.region])


@handles_errors()
def _setup(args: argparse.Namespace) -> int:
    from labkit.classroom.setup import class_setup  # start-up time: labkit.classroom loads pandas

    _, backends = _learners_backend(args)
    report = class_setup(backend=backends[0], instructor=args.instructor, yes=args.yes)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report)
    return EXIT_OK


@handles_errors()
def _learners_create(args: argparse.Namespace) -> int:
    from labkit.classroom.learners import Limits, learners_create, parse_names  # start-up time: pandas

    LabConfig(lab=args.lab)  # refuse a bad lab, bad names, bad limits before any backend is made
    parse_names(args.names, args.lab)
    if args.dir:
        check_output_folder(args.dir, field="--dir")
    limits = Limits.of(args.instance_type, args.db_instance_class)
    _, backends = _learners_backend(args)
    report = learners_create(
        lab=args.lab, names=args.names, backend=backends[0], credentials_dir=args.dir, yes=args.yes,
        instance_type=limits.instance_type, db_instance_class=limits.db_instance_class,
    )  # fmt: skip
    return print_report(report, args.json)


@handles_errors()
def _learners_list(args: argparse.Namespace) -> int:
    from labkit.classroom.learners import learners_list  # start-up time: labkit.classroom loads pandas

    if args.lab is not None:
        LabConfig(lab=args.lab)
    _, backends = _learners_backend(args)
    return print_report(learners_list(lab=args.lab, backend=backends[0]), args.json)


@handles_errors()
def _learners_delete(args: argparse.Namespace) -> int:
    from labkit.classroom.learners import learners_delete, parse_names  # start-up time: pandas

    LabConfig(lab=args.lab)
    if args.names:
        parse_names(args.names, args.lab)
    if args.dir:
        check_output_folder(args.dir, field="--dir")
    _, backends = _learners_backend(args)
    report = learners_delete(
        lab=args.lab, names=args.names or (), backends=backends, credentials_dir=args.dir, yes=args.yes
    )
    return print_report(report, args.json)


def _learners_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("learners")
    group.add_argument("--config", default=None, help="lab config TOML for defaults (default: the home's lab.toml)")
    group.add_argument("--region", action="append", default=[], help="a region (repeatable; delete looks in each)")
    group.add_argument("--backend", default=None, choices=BACKEND_CHOICES, help="where the class lives")
    flags.add_argument("--json", action="store_true", help="machine-readable output")
    return flags


# `class learners` verbs: name, handler, help, and whether it changes the account (then: --dir, --yes, a dry run
# without --yes; --lab required) and whether --names is required.
_LEARNER_VERBS = (
    ("create", "_learners_create", True, True,
     "create each learner's IAM user, policies and key (a dry run unless --yes); keys go to 0600 files"),
    ("list", "_learners_list", False, False, "the learner identities labkit made"),
    ("delete", "_learners_delete", True, False,
     "delete learners whose labs are gone (a dry run unless --yes); refuses while a lab is left"),
)  # fmt: skip


def _register_learners(actions: Any) -> None:
    learners = actions.add_parser("learners", help="onboard a class: one tagged IAM user per learner, or remove it")
    verbs = learners.add_subparsers(dest="verb", required=True)
    for name, handler, changes, names_required, help_text in _LEARNER_VERBS:
        verb = verbs.add_parser(name, parents=[_learners_flags()], help=help_text)
        verb.set_defaults(handler=globals()[handler])
        verb.add_argument("--lab", required=changes, default=None, help="the lab (the learners' labkit:lab tag)")
        if not changes:
            continue
        verb.add_argument(
            "--names", required=names_required, default=None, metavar="A,B,...",
            help="learner names, comma-separated" + ("" if names_required else " (default: every learner of the lab)"),
        )  # fmt: skip
        verb.add_argument(
            "--dir", default=None, help="the credentials files' folder (default: LABKIT_HOME/learners/LAB)"
        )
        verb.add_argument("--yes", action="store_true", help=f"really {name} (without it: a dry run)")
        if name == "create":
            verb.add_argument(
                "--instance-type", default=None, help="the one EC2 instance type they may launch (default t3.micro)"
            )
            verb.add_argument(
                "--db-instance-class", default=None,
                help="the one DB instance class they may launch (default db.t4g.medium)",
            )  # fmt: skip


def _learner_count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of learners") from None


def register(subparsers: Any) -> None:
    """Add `class` with `status`, `reset`, `check`, `progress` and `learners` to a `labkit` parser's subparsers."""

    parser = subparsers.add_parser(
        "class", help="instructor: every learner's lab and progress, a safe reset, quota check"
    )
    actions = parser.add_subparsers(dest="action", required=True)

    status = actions.add_parser(
        "status",
        parents=[_class_flags(lab_help="only this lab (default: every lab)")],
        help="every learner's lab resources with state, age and cost per hour; totals",
    )
    status.set_defaults(handler=_status)

    reset = actions.add_parser(
        "reset",
        parents=[_class_flags(lab_help="the lab to reset (default: the config's lab)")],
        help="delete learners' labs (a dry run unless --yes); never touches anything else",
    )
    reset.add_argument("--older-than", default=None, metavar="AGE", help="only labs begun before this: 45m, 2h, 1d")
    reset.add_argument("--yes", action="store_true", help="really delete (without it: a dry run)")
    reset.add_argument("--report-dir", default=None, help="where the report goes (default: LABKIT_HOME/reports)")
    reset.set_defaults(handler=_reset)

    progress = actions.add_parser(
        "progress",
        parents=[_class_flags(lab_help="only this lab (default: every lab)")],
        help="which exercises each learner passed and when, verified; a CSV for a gradebook",
    )
    progress.add_argument(
        "--homes", nargs="+", action="extend", default=[], metavar="HOME",
        help="learners' labkit homes or quoted globs, e.g. '/home/*/.labkit' (default: this home)",
    )  # fmt: skip
    progress.add_argument("--tags", action="store_true", help="also read the progress tags on the labs (--region)")
    progress.add_argument(
        "--csv", default=None, metavar="FILE", help="write a CSV: one row per learner, 1/0 per exercise"
    )
    progress.add_argument("--long", action="store_true", help="the CSV has one row per record instead")
    progress.set_defaults(handler=_progress)

    check = actions.add_parser("check", help="do N labs fit in the account's quotas in this region?")
    check.add_argument("--learners", type=_learner_count, required=True, metavar="N", help="number of learners")
    add_config_arguments(check)
    check.set_defaults(handler=_check)

    setup = actions.add_parser(
        "setup",
        parents=[_learners_flags()],
        help="(an account administrator, once) create every policy labkit ships; a dry run unless --yes",
    )
    setup.add_argument(
        "--instructor", default=None, metavar="USER", help="also give this IAM user the instructor policies"
    )
    setup.add_argument("--yes", action="store_true", help="really create them (without it: a dry run)")
    setup.set_defaults(handler=_setup)

    _register_learners(actions)
    register_hub_learners(actions)  # the one-machine hub's system accounts (labkit.cli.hub)
