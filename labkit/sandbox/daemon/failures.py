"""The daemon's log of failures that repeat: each distinct failure in full once, then one line a minute.

Runs in the daemon. Its loop retries what failed on every pass (a server that cannot start, a template that
cannot be made), and logged each failure with its traceback every few seconds: the sandbox log grew by tens of
kilobytes a minute for as long as the cause lasted, and the first report, the one that says why, scrolled away.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

REPEAT_SECONDS = 60.0  # how often a failure that keeps happening is reported again (one line, with its count)
MAX_KINDS = 200  # distinct failures remembered; beyond it the oldest are forgotten (and reported in full again)


class FailureLog:
    """`exception(what)` inside an `except` block: the first time a failure (what, type, message) happens it is
    logged with its traceback; the same failure again is only counted, and reported as one line at most once every
    `every` seconds."""

    def __init__(
        self, logger: logging.Logger, every: float = REPEAT_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = logger
        self.every = every
        self.clock = clock
        self._seen: dict[tuple[str, str, str], list[float]] = {}  # failure -> [last reported at, count since]

    def exception(self, what: str, *args: object) -> None:
        error = sys.exc_info()[1]
        text = what % args if args else what
        key = (text, type(error).__name__, str(error))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= MAX_KINDS:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = [now, 0]
            self.log.exception(text)
            return
        seen[1] += 1
        if now - seen[0] >= self.every:
            first_line = str(error).splitlines()[0] if str(error) else ""
            self.log.error(
                "%s, again: %d times in the last %.0f s (%s: %s; the first report above has the traceback)",
                text, seen[1], now - seen[0], type(error).__name__, first_line,
            )  # fmt: skip
            seen[0], seen[1] = now, 0
