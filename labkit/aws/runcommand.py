"""SSM Run Command: a shell script run on an instance by its SSM agent, waited for, its output returned.

What an operator does on an instance without SSH: `AWS-RunShellScript` runs the script as root; the result
(status, standard output and error, each cut at 24,000 characters) comes back through the SSM API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import WaiterError

from labkit.aws.errors import THROTTLING_CODES
from labkit.errors import LabkitError

if TYPE_CHECKING:  # the Backend is only a parameter's type here; aws/backend imports this module
    from labkit.aws.backend import Backend

DOCUMENT = "AWS-RunShellScript"
FINISHED = ("Success", "Cancelled", "TimedOut", "Failed", "Cancelling")


def run_shell(
    backend: Backend,
    instance_id: str,
    script: str,
    *,
    comment: str,
    timeout: float,
    delay: float = 2.0,
    what: str = "the command",
    fix: str = "check the instance is online in Session Manager (labkit.readiness())",
) -> dict[str, Any]:
    """Run `script` on `instance_id` and return its final invocation (a failed script is returned, not raised,
    for its output); a LabkitError naming `what` when it does not finish within `timeout` seconds."""
    command_id = send_shell(backend, instance_id, script, comment=comment, timeout=timeout)
    return wait_shell(backend, instance_id, command_id, timeout=timeout, delay=delay, what=what, fix=fix)


def send_shell(backend: Backend, instance_id: str, script: str, *, comment: str, timeout: float) -> str:
    """Send `script` to `instance_id` without waiting (a caller with something to do meanwhile); its command id."""
    sent = backend.client("ssm").send_command(
        InstanceIds=[instance_id],
        DocumentName=DOCUMENT,
        Comment=comment[:100],
        Parameters={"commands": [script], "executionTimeout": [str(int(timeout))]},
        TimeoutSeconds=60,
    )
    return str(sent["Command"]["CommandId"])


def wait_shell(
    backend: Backend, instance_id: str, command_id: str, *, timeout: float, delay: float, what: str, fix: str
) -> dict[str, Any]:
    """Wait for a sent command to finish; its final invocation (see run_shell)."""
    ssm = backend.client("ssm")
    # boto3's command_executed waiter also rides out InvocationDoesNotExist right after sending
    attempts = max(1, int((timeout + 60) / max(delay, 0.1)))
    try:
        ssm.get_waiter("command_executed").wait(
            CommandId=command_id,
            InstanceId=instance_id,
            WaiterConfig={"Delay": max(1, round(delay)), "MaxAttempts": attempts},
        )
    except WaiterError as exc:
        last = exc.last_response or {}
        if last.get("Status") in FINISHED:
            return last
        if "Error" in last:  # the waiter stopped on AWS's own error, not on time: say which
            raise _aws_error(what, instance_id, last["Error"]) from None
        raise LabkitError(
            f"{what} on {instance_id} did not finish within {timeout:.0f} s", field="instance", fix=fix
        ) from None
    return ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)


def _aws_error(what: str, instance_id: str, error: dict[str, Any]) -> LabkitError:
    """AWS's own refusal while waiting (botocore's waiter raises WaiterError with the error as its last response,
    after the client's retries of a throttled call are spent): the code, the message and what to do."""
    code, message = error.get("Code", "error"), error.get("Message", "")
    if code in THROTTLING_CODES:
        fix = (
            "AWS throttled the calls (the account's SSM request rate is shared by the class): run it again in a minute"
        )
    elif code in ("AccessDenied", "AccessDeniedException"):
        fix = "your identity needs ssm:GetCommandInvocation (labkit-learner-read) to follow a command it sent"
    else:
        fix = "see AWS's message; `labkit preflight` checks permissions and the instance's readiness"
    return LabkitError(f"{what} on {instance_id}: AWS answered {code}: {message}", field="instance", fix=fix)
