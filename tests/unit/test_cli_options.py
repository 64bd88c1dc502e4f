"""The CLI's shared pieces: config flags generated from LabConfig, the one error path, a quick `--help`."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from typing import get_type_hints

import pytest

from labkit.aws.backend import BACKENDS
from labkit.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, RESUME_HINT, handles_errors
from labkit.cli.main import build_parser
from labkit.cli.options import BACKEND_CHOICES, add_config_arguments, config_from_args
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError


def config_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit plan")
    add_config_arguments(parser)
    return parser


def flag_of(parser: argparse.ArgumentParser, name: str) -> argparse.Action:
    return next(a for a in parser._actions if "--" + name.replace("_", "-") in a.option_strings)


@pytest.mark.parametrize("field", dataclasses.fields(LabConfig), ids=lambda f: f.name)
def test_every_config_field_has_a_flag_with_its_help(field: dataclasses.Field) -> None:
    parser = config_parser()
    action = flag_of(parser, field.name)
    flag = "--" + field.name.replace("_", "-")
    assert field.metadata.get("help"), f"give LabConfig.{field.name} metadata={{'help': ...}}"
    assert (action.dest, action.help, action.default) == (field.name, field.metadata["help"], None)
    if get_type_hints(LabConfig)[field.name] is bool:
        assert action.option_strings == [flag, "--no-" + flag[2:]]
        assert getattr(parser.parse_args([flag]), field.name) is True
        assert getattr(parser.parse_args(["--no-" + flag[2:]]), field.name) is False
    else:
        assert action.option_strings == [flag] and action.metavar == field.name.upper()
        assert getattr(parser.parse_args([flag, "x"]), field.name) == "x"


def test_config_flags_override_the_file_and_lab_flags_share_the_same_path(lab_home, tmp_path) -> None:
    path = tmp_path / "lab.toml"
    LabConfig(learner="dave", readers=3, key_pair=True).save(path)
    args = config_parser().parse_args(["--config", str(path), "--readers", "0", "--no-key-pair"])
    assert config_from_args(args) == LabConfig(learner="dave", readers=0, key_pair=False)

    args = build_parser().parse_args(["lint", "--config", str(path), "--learner", "erin", "--backend", "aws"])
    assert config_from_args(args) == LabConfig(learner="erin", readers=3, key_pair=True, backend="aws")


def test_the_backend_choices_are_the_registered_backends() -> None:
    assert BACKEND_CHOICES == BACKENDS


def subcommand_parsers(parser: argparse.ArgumentParser, path: str = "labkit"):
    """(command path, parser) of every leaf subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from subcommand_parsers(child, f"{path} {name}")
            return
    yield path, parser


def test_every_handler_goes_through_the_one_error_path() -> None:
    leaves = dict(subcommand_parsers(build_parser()))
    assert {"labkit plan", "labkit sandbox env", "labkit class reset", "labkit run-notebooks"} <= set(leaves)
    wrapper_code = handles_errors()(lambda args: 0).__code__  # every wrapper runs this same code
    for path, parser in leaves.items():
        assert parser.get_default("handler").__code__ is wrapper_code, f"{path}: wrap it with @handles_errors"


def raising(error: BaseException):
    def action(args: argparse.Namespace) -> int:
        raise error

    return action


def test_errors_become_exit_codes(capsys) -> None:
    args = argparse.Namespace()
    bad_input = ConfigError("no such region", field="region", fix="use us-east-1")
    assert handles_errors()(raising(bad_input))(args) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("error: region: no such region")
    assert handles_errors()(raising(LabkitError("the sandbox is not running")))(args) == EXIT_FAILED
    assert handles_errors(failed=EXIT_BAD_INPUT)(raising(LabkitError("unknown endpoint")))(args) == EXIT_BAD_INPUT
    capsys.readouterr()

    assert handles_errors()(raising(KeyboardInterrupt()))(args) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == ""
    assert handles_errors(interrupted=RESUME_HINT)(raising(KeyboardInterrupt()))(args) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == RESUME_HINT + "\n"
    with pytest.raises(ValueError):  # a bug is a traceback, not an exit code
        handles_errors()(raising(ValueError("bug")))(args)


def test_labkit_help_loads_neither_pandas_nor_boto3() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "labkit.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "run-notebooks" in result.stdout and "labkit.cli.bench" in imported
    assert not imported & {"pandas", "boto3", "botocore"}
