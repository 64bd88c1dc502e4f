"""Fault injection for apply: make one chosen call of one step fail, the way AWS calls fail.

A fault point is (step, operation, n): the n-th call of `operation` made while apply works on `step`
(labkit marks each worker thread with the step it runs, see labkit.lab.resources.current_step). Two modes:

- "refused": the call never reaches AWS (throttled, a transient 5xx, a validation error);
- "reply lost": AWS carries the call out but the reply never arrives (a read timeout), so the resource
  exists, tagged, while apply believes the step failed.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ReadTimeoutError
from support.strict import aws_error

from labkit.lab.resources import current_step

READ_ONLY_PREFIXES = ("Describe", "List", "Get")
MODES = ("refused", "reply lost")


@dataclass(frozen=True)
class FaultPoint:
    step: str
    operation: str
    occurrence: int

    def __str__(self) -> str:
        return f"{self.step}:{self.operation}#{self.occurrence}"


class FaultInjector:
    """Records the changing calls apply makes per step, and fails one of them when armed."""

    def __init__(self, session: Any) -> None:
        self.seen: list[FaultPoint] = []
        self.recording = False
        self.fired = False
        self._target: FaultPoint | None = None
        self._mode = ""
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._last = threading.local()
        session.events.register("before-parameter-build", self._before)
        session.events.register("after-call", self._after)

    def record(self) -> None:
        """Start a fresh recording of the changing calls, as fault points (and disarm)."""
        self.arm(None, "")
        self.seen, self.recording = [], True

    def stop_recording(self) -> list[FaultPoint]:
        self.recording = False
        return list(self.seen)

    def arm(self, point: FaultPoint | None, mode: str) -> None:
        with self._lock:
            self._target, self._mode, self.fired = point, mode, False
            self._counts.clear()

    def disarm(self) -> None:
        self.arm(None, "")

    def _point(self, event_name: str) -> FaultPoint | None:
        step = current_step()
        operation = event_name.split(".")[-1]
        if step is None or operation.startswith(READ_ONLY_PREFIXES):
            return None
        with self._lock:
            self._counts[(step, operation)] += 1
            point = FaultPoint(step, operation, self._counts[(step, operation)])
            if self.recording:
                self.seen.append(point)
            return point

    def _hit(self, point: FaultPoint | None, mode: str) -> bool:
        with self._lock:
            if point is None or self.fired or point != self._target or self._mode != mode:
                return False
            self.fired = True
            return True

    def _before(self, event_name: str, **_: Any) -> None:
        point = self._point(event_name)
        self._last.point = point
        if self._hit(point, "refused"):
            raise aws_error(point.operation, "InjectedFault", f"injected: {point} refused")

    def _after(self, event_name: str, **_: Any) -> None:
        point = getattr(self._last, "point", None)
        if point is not None and point.operation == event_name.split(".")[-1] and self._hit(point, "reply lost"):
            raise ReadTimeoutError(endpoint_url=f"injected: reply of {point} lost")
