"""What the sandbox's processes read from their environment and files, and nothing else.

The session plugin's idle timeout (LABKIT_SSM_IDLE_TIMEOUT), the daemon's delay before a cluster endpoint follows
a new writer (LABKIT_SANDBOX_ENDPOINT_DELAY) and the name of the app host's settings file. The client checks a
setting here before it starts a process, and the process reads it here: standard library only, so the backend
(which the processes import too) can use it without importing a process's own module.

Runs in the client (the learner's kernel, the CLI), the daemon, the session plugin and the app hosts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

# Session Manager ends a session with no data in either direction after the account's idle session timeout,
# 20 minutes by default (AWS Systems Manager User Guide, "Specify an idle session timeout value"); the plugin
# then prints "Exiting session with sessionId: ID." and exits 0. Tests set it to a second or two.
IDLE_TIMEOUT_ENV = "LABKIT_SSM_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 20 * 60.0
# Aurora's cluster endpoint is a DNS name with a 5-second TTL that is repointed at the new writer after a
# failover ("Aurora endpoints use a 5-second Time to Live (TTL) setting, but the client environment configuration
# can introduce additional delays in the propagation of DNS changes": AWS Database Blog, "Improve application
# availability on Amazon Aurora", https://aws.amazon.com/blogs/database/improve-application-availability-on-amazon-aurora/).
# AWS documents no figure for the repointing itself, so the sandbox's default is the TTL: a client that resolves
# the name within 5 s of the promotion still reaches the old writer. Tests set 0 or a second or two.
ENDPOINT_DELAY_ENV = "LABKIT_SANDBOX_ENDPOINT_DELAY"
DEFAULT_ENDPOINT_DELAY = 5.0
MAX_ENDPOINT_DELAY = 600.0

ENV_FILE_NAME = "labkit-app.env"  # the app host's, next to the app's source: the instance's /etc/labkit-app.env


class BadSetting(Exception):
    """An environment setting the plugin cannot use; the message names it and the fix."""


def idle_timeout(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds of silence after which the session ends: LABKIT_SSM_IDLE_TIMEOUT, else Session Manager's default."""
    seconds = _seconds(environ, IDLE_TIMEOUT_ENV, DEFAULT_IDLE_TIMEOUT)
    if not seconds > 0:
        raise BadSetting(
            f"{IDLE_TIMEOUT_ENV}={environ[IDLE_TIMEOUT_ENV]!r} is not a positive number of seconds; set it to one "
            f"(Session Manager's default is {DEFAULT_IDLE_TIMEOUT:.0f}, 20 minutes) or unset it"
        )
    return seconds


def endpoint_delay(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds from a promotion until the cluster endpoint resolves to the new writer: LABKIT_SANDBOX_ENDPOINT_DELAY,
    else Aurora's DNS TTL (0 moves it at once)."""
    seconds = _seconds(environ, ENDPOINT_DELAY_ENV, DEFAULT_ENDPOINT_DELAY)
    if not 0 <= seconds <= MAX_ENDPOINT_DELAY:
        raise BadSetting(
            f"{ENDPOINT_DELAY_ENV}={environ[ENDPOINT_DELAY_ENV]!r} is not 0 to {MAX_ENDPOINT_DELAY:.0f} seconds; set "
            f"it to one (the default, {DEFAULT_ENDPOINT_DELAY:g}, is Aurora's DNS TTL) or unset it"
        )
    return seconds


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    """A number of seconds from the environment (NaN when it is not a finite number), `default` when unset."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        return math.nan
    return seconds if math.isfinite(seconds) else math.nan
