"""A command whose AWS endpoint stops answering half way (the sandbox was stopped or crashed under it) says so
and how to carry on, never with botocore's traceback."""

from __future__ import annotations

import argparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.cli.exits import EXIT_FAILED, EXIT_NO_SANDBOX, RESUME_HINT, handles_errors
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
