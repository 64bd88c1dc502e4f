"""A command whose AWS endpoint stops answering half way (the sandbox was stopped or crashed under it) says so
and how to carry on, never with botocore's traceback."""

from __future__ import annotations

import argparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from botocore.parsers import ResponseParserError

from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.cli.exits import EXIT_FAILED, EXIT_NO_SANDBOX, RESUME_HINT, handles_errors
from labkit.lab.apply import GraphRun, StepsFailed, _raise_apply_failure
from labkit.sandbox.processes import free_port


def test_a_sandbox_that_died_under_a_command_is_reported_with_the_way_on(capsys):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more

    @handles_errors(interrupted=RESUME_HINT)
    def up(args: argparse.Namespace) -> int:
        ec2 = boto3.client(
            "ec2", endpoint_url=endpoint, region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}),
            **FAKE_CREDENTIALS,
        )  # fmt: skip
        ec2.describe_vpcs()
        return 0

    assert up(argparse.Namespace()) == EXIT_NO_SANDBOX
    err = capsys.readouterr().err
    assert f"the sandbox stopped answering at {endpoint}" in err and "labkit sandbox up" in err
    assert "run the same command again" in err and "Traceback" not in err


def test_an_unreachable_aws_endpoint_is_reported_without_a_traceback(capsys):
    @handles_errors()
    def status(args: argparse.Namespace) -> int:
        raise EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com/")

    assert status(argparse.Namespace()) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "could not reach https://ec2.us-east-1.amazonaws.com/" in err and "fix:" in err


def test_other_errors_still_propagate():
    @handles_errors()
    def broken(args: argparse.Namespace) -> int:
        raise ValueError("a bug, not the user's to fix")

    with pytest.raises(ValueError, match="a bug"):
        broken(argparse.Namespace())


def _cut_off() -> ResponseParserError:
    """What botocore raises when the sandbox dies while it answers: an empty body where XML should be."""
    return ResponseParserError("Unable to parse response (no element found: line 1, column 0), invalid XML received")


def test_an_apply_whose_sandbox_died_mid_answer_says_so_not_a_traceback(capsys):
    """One step's answer was cut off as the daemon died, the next step found nothing listening: the run reports
    the dead sandbox (the other failures follow from it), as CI saw when a `kill -9` landed mid-response."""
    endpoint = f"http://127.0.0.1:{free_port()}/"
    failures = {"instance": _cut_off(), "db-1": EndpointConnectionError(endpoint_url=endpoint)}

    @handles_errors(interrupted=RESUME_HINT)
    def up(args: argparse.Namespace) -> int:
        _raise_apply_failure(GraphRun(failed=failures))
        return 0

    assert up(argparse.Namespace()) == EXIT_NO_SANDBOX
    err = capsys.readouterr().err
    assert f"the sandbox stopped answering at {endpoint}" in err and "labkit sandbox up" in err


def test_an_answer_cut_off_alone_is_reported_with_the_way_on(capsys):
    @handles_errors()
    def status(args: argparse.Namespace) -> int:
        raise _cut_off()

    assert status(argparse.Namespace()) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "answer was cut off" in err and "labkit sandbox status" in err and "Traceback" not in err


def test_a_step_whose_answer_was_cut_off_stops_apply_with_a_summary_not_a_bug():
    with pytest.raises(StepsFailed) as stopped:
        _raise_apply_failure(GraphRun(failed={"instance": _cut_off()}))
    assert stopped.value.field == "instance" and "run apply again" in stopped.value.fix
