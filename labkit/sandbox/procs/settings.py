"""What the sandbox's stand-in processes read from their environment and files, and nothing else.

The session plugin's idle timeout (LABKIT_SSM_IDLE_TIMEOUT) and the name of the app host's settings file. The
client checks a setting here before it starts a process, and the process reads it here: standard library only,
so the backend (which the processes import too) can use it without importing a process's own module.

Runs in the client (the learner's kernel, the CLI), the session plugin and the app hosts.
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

ENV_FILE_NAME = "labkit-app.env"  # the app host's, next to the app's source: the instance's /etc/labkit-app.env


class BadSetting(Exception):
    """An environment setting the plugin cannot use; the message names it and the fix."""


def idle_timeout(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds of silence after which the session ends: LABKIT_SSM_IDLE_TIMEOUT, else Session Manager's default."""
    raw = environ.get(IDLE_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_IDLE_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise BadSetting(
            f"{IDLE_TIMEOUT_ENV}={raw!r} is not a positive number of seconds; set it to one "
            f"(Session Manager's default is {DEFAULT_IDLE_TIMEOUT:.0f}, 20 minutes) or unset it"
        )
    return seconds
