"""The exit codes of `labkit`, and the one path from an error to an exit code.

Every subcommand handler is wrapped by `handles_errors`, so a user mistake prints `error: what: fix` on
stderr and never a traceback; `main` only dispatches. A bad input exits 2 before any AWS call.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from labkit.errors import ConfigError, LabkitError, SandboxNotRunning

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_NO_SANDBOX = 3  # every command that needs the sandbox, when it is not running: one code scripts can test

# Resumable commands (`up`, `down`, ...) say how to carry on after Ctrl-C.
RESUME_HINT = "interrupted: run the same command again, it picks up where it stopped"

Handler = Callable[[argparse.Namespace], int]


def handles_errors(*, failed: int = EXIT_FAILED, interrupted: str | None = None) -> Callable[[Handler], Handler]:
    """Wrap a handler: a ConfigError exits EXIT_BAD_INPUT, a sandbox that is not running EXIT_NO_SANDBOX, any
    other LabkitError `failed`, Ctrl-C 130.

    `failed` is EXIT_BAD_INPUT for the commands that have always exited 2 on every labkit error
    (rules, lint, reach, tunnel, sql, bench, run-notebooks, sandbox): scripts may rely on it, and there 1
    already means "a finding" or "blocked". `interrupted` is printed on Ctrl-C when given.
    """

    def decorate(action: Handler) -> Handler:
        @functools.wraps(action)
        def handler(args: argparse.Namespace) -> int:
            try:
                return action(args)
            except LabkitError as exc:
                print(f"error: {exc}", file=sys.stderr)
                if isinstance(exc, SandboxNotRunning):
                    return EXIT_NO_SANDBOX
                return EXIT_BAD_INPUT if isinstance(exc, ConfigError) else failed
            except KeyboardInterrupt:
                if interrupted:
                    print(interrupted, file=sys.stderr)
                return EXIT_INTERRUPTED
            except Exception as exc:
                code = _unreachable_endpoint(exc, failed)
                if code is None:
                    code = _credentials_refused(exc)
                if code is None:
                    raise
                return code

        return handler

    return decorate


CUT_OFF = LabkitError(
    "the AWS endpoint's answer was cut off half way (a sandbox that stopped while it answered, or the network)",
    field="endpoint",
    fix="`labkit sandbox status` says whether the sandbox runs (`labkit sandbox up` starts it); then run the same "
    "command again: it picks up where it stopped",
)


def _unreachable_endpoint(exc: Exception, failed: int) -> int | None:
    """The AWS endpoint stopped answering in the middle of a command (the sandbox was stopped or crashed, or the
    network went away): say so and how to carry on, not a traceback. None for any other error."""
    from botocore.exceptions import EndpointConnectionError  # loaded already: the call that failed used botocore
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ResponseParserError):  # an answer cut off half way: no URL on it to tell which endpoint
        print(f"error: {CUT_OFF}", file=sys.stderr)
        return failed
    if not isinstance(exc, EndpointConnectionError):
        return None
    from labkit.aws.backend import is_loopback_url  # the same: loaded by the backend that made the call

    url = str(exc.kwargs.get("endpoint_url", ""))
    if is_loopback_url(url):
        error: LabkitError = SandboxNotRunning(
            f"the sandbox stopped answering at {url}",
            field="sandbox",
            fix="start it with `labkit sandbox up`, then run the same command again: it picks up where it stopped",
        )
    else:
        error = LabkitError(
            f"could not reach {url}", field="endpoint", fix="check the network, then run the same command again"
        )
    print(f"error: {error}", file=sys.stderr)
    return EXIT_NO_SANDBOX if isinstance(error, SandboxNotRunning) else failed


# What AWS (and botocore, before sending) answers when the keys cannot be used at all: none found, half a pair,
# a key AWS does not know, a wrong secret, an expired session. Not AccessDenied: that is a permission, per action.
CREDENTIAL_ERRORS = (
    "InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure", "SignatureDoesNotMatch",
    "InvalidSignatureException", "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId",
    "MissingAuthenticationToken", "MissingAuthenticationTokenException",
)  # fmt: skip
CREDENTIALS_FIX = (
    "run `aws configure` (or `aws sso login --profile NAME` and set AWS_PROFILE) with the keys of your account; "
    'or unset LABKIT_BACKEND (and use backend = "sandbox" in lab.toml) for the local sandbox'
)


def _credentials_refused(exc: Exception) -> int | None:
    """The AWS credentials cannot be used (none, incomplete, unknown, expired): say so and how to fix them, not a
    traceback. None for any other error."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError  # loaded: see above

    if isinstance(exc, NoCredentialsError):
        message = "no AWS credentials found (environment, ~/.aws files, SSO or instance role)"
    elif isinstance(exc, PartialCredentialsError):
        message = f"the AWS credentials are incomplete ({exc})"
    elif isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in CREDENTIAL_ERRORS:
        error = exc.response["Error"]
        message = f"AWS refused the credentials: {error.get('Code')}: {error.get('Message', '')}".rstrip(": ")
    else:
        return None
    print(f"error: {LabkitError(message, field='AWS credentials', fix=CREDENTIALS_FIX)}", file=sys.stderr)
    return EXIT_FAILED
