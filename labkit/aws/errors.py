"""Reading AWS errors and retrying: one place for the error code, 'not found', and growing pauses."""

from __future__ import annotations

import time
from collections.abc import Iterator

from botocore.exceptions import ClientError

# Errors that mean "something still depends on this, try again shortly" during deletion.
RETRYABLE_CODES = frozenset(
    {
        "DependencyViolation",
        "DeleteConflict",
        "InvalidDBSubnetGroupStateFault",
        "InvalidDBClusterStateFault",
        "InvalidDBInstanceState",
        "InvalidDBInstanceStateFault",
        "ResourceInUse",
        "IncorrectState",
    }
)


# AWS's "slow down" answers (botocore's retry handlers, botocore/retries/standard.py: _THROTTLED_ERROR_CODES, those
# EC2, RDS, IAM and SSM give). botocore retries them itself; when a class shares an account's rate for longer than
# those retries last, labkit waits and tries again where it can (a wait's poll, a delete).
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled"}
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def error_message(exc: BaseException) -> str:
    """The AWS error message of a ClientError ('' for anything else)."""
    return exc.response.get("Error", {}).get("Message", "") if isinstance(exc, ClientError) else ""


def is_not_found(exc: BaseException) -> bool:
    """True for the many spellings of 'that resource does not exist'."""
    code = error_code(exc)
    return "NotFound" in code or code == "NoSuchEntity"


def backoff(first: float, most: float, deadline: float | None = None) -> Iterator[float]:
    """Sleep with doubling pauses (first, 2*first, ... capped at `most`), yielding the time slept so far.

    Stops when `deadline` (a time.monotonic() value) has passed; without one it goes on until the caller stops.
    """
    delay, slept = first, 0.0
    while deadline is None or time.monotonic() < deadline:
        pause = delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
        time.sleep(pause)
        slept += pause
        yield slept
        delay = min(delay * 2, most)
