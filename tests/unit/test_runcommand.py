"""SSM Run Command (labkit.aws.runcommand): a wait that stops on AWS's own error says that error, not a timeout.

moto's send_command reports success at once (FACTS.md), so botocore's Stubber plays the SSM API here: the
command is accepted, then polling its invocation is refused or throttled, as AWS can answer.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.aws.runcommand import run_shell
from labkit.errors import LabkitError

INSTANCE = "i-0123456789abcdef0"
COMMAND = "0b7d1f3c-2a4e-4f6b-9c8d-1e2f3a4b5c6d"


class _Backend:
    """Just enough of a Backend for run_shell: its SSM client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str) -> Any:
        assert service == "ssm"
        return self._client


def _ssm() -> tuple[Any, Stubber]:
    client = boto3.Session(region_name="us-east-1", **FAKE_CREDENTIALS).client("ssm")
    stub = Stubber(client)
    stub.add_response("send_command", {"Command": {"CommandId": COMMAND}}, {"InstanceIds": [INSTANCE],
                      "DocumentName": "AWS-RunShellScript", "Comment": ANY, "Parameters": ANY, "TimeoutSeconds": 60})  # fmt: skip
    return client, stub


@pytest.mark.parametrize(
    ("code", "fix_words"),
    [
        ("AccessDeniedException", "ssm:GetCommandInvocation"),
        ("ThrottlingException", "throttled"),
        ("InternalServerError", "AWS's message"),
    ],
)
def test_a_wait_refused_by_aws_reports_aws_error_not_a_timeout(code: str, fix_words: str) -> None:
    """It said "did not finish within 360 s" for any of these, at once."""
    client, stub = _ssm()
    stub.add_client_error("get_command_invocation", service_error_code=code, service_message="said AWS")
    with stub, pytest.raises(LabkitError) as caught:
        run_shell(_Backend(client), INSTANCE, "true", comment="c", timeout=300, delay=1, what="the benchmark")
    assert f"the benchmark on {INSTANCE}: AWS answered {code}: said AWS" in caught.value.message
    assert "did not finish" not in caught.value.message and fix_words in (caught.value.fix or "")


def test_a_command_that_finished_failing_is_returned_for_its_output() -> None:
    client, stub = _ssm()
    failed = {"CommandId": COMMAND, "InstanceId": INSTANCE, "Status": "Failed", "StandardErrorContent": "boom"}
    stub.add_response("get_command_invocation", failed)
    with stub:
        reply = run_shell(_Backend(client), INSTANCE, "false", comment="c", timeout=1, delay=1)
    assert reply["Status"] == "Failed" and reply["StandardErrorContent"] == "boom"
