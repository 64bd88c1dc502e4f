"""The load loop: N workers calling one operation, closed loop or at a fixed rate, keeping every sample.

Closed loop: each worker sends its next request as soon as the previous answer arrives (as fast as possible).
Fixed rate (open loop): request k of the run is *intended* at start + k / rate, whatever happened before; a
worker that falls behind sends at once, and latency is measured from the intended time. A stall therefore
shows up in every request it delayed, not just the one it hit (no coordinated omission).

This module is stdlib only (plus the caller's operation), so the same loop runs on a remote instance.
"""

from __future__ import annotations

import contextlib
import gc
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass

SPIN_NS = 300_000  # sleep until this close to an intended time, then spin: sleep alone overshoots by ~100 us

Operation = Callable[[], object]


@dataclass(frozen=True)
class Schedule:
    """How much load: workers, an optional fixed rate, and a duration or a count (warm-up comes first)."""

    concurrency: int = 1
    rate: float | None = None  # requests per second across all workers; None = closed loop
    duration: float | None = None  # seconds of measurement, after warm-up
    count: int | None = None  # measured requests across all workers
    warmup: int = 20  # requests per worker excluded from the results

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "fixed-rate"


# (worker, seq, intended_ns, start_ns, end_ns, error or None, warmup)
Row = tuple[int, int, int, int, int, "str | None", bool]  # quoted: evaluated at run time, on Python 3.9 too


def run(make_operation: Callable[[int], Operation], schedule: Schedule) -> tuple[list[Row], int]:
    """Run the schedule; returns every sample and the common start time (perf_counter_ns)."""
    workers = schedule.concurrency
    operations = [make_operation(worker) for worker in range(workers)]  # connect before the clock starts
    rows: list[list[Row]] = [[] for _ in range(workers)]
    barrier = threading.Barrier(workers + 1)
    start: list[int] = []

    def work(worker: int) -> None:
        barrier.wait()
        _loop(worker, operations[worker], schedule, start[0], rows[worker])

    threads = [threading.Thread(target=work, args=(w,), name=f"bench-{w}", daemon=True) for w in range(workers)]
    with paused_garbage_collection():
        for thread in threads:
            thread.start()
        start.append(time.perf_counter_ns())
        barrier.wait()
        for thread in threads:
            thread.join()
    return [row for worker_rows in rows for row in worker_rows], start[0]


@contextlib.contextmanager
def paused_garbage_collection() -> Iterator[None]:
    """No cyclic garbage collection during a run: a collection stalls every thread of this process for up to
    milliseconds, which is the client's cost, not the database's (reference counting still frees each
    request's rows at once). The young generations are collected first, not all of them: a full collection
    walks every object of the process (286 ms a round in a test process, 93% of a 50-round comparison), and
    the old generations are collected as usual once the run has ended."""
    enabled = gc.isenabled()
    gc.collect(1)
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def alternate(
    operations: Mapping[Hashable, Operation], count: int, warmup: int, order: random.Random
) -> dict[Hashable, list[Row]]:
    """One round of an interleaved comparison on the caller's thread: `warmup` then `count` requests per arm,
    the arms taking turns request by request in a fresh random order each turn, so a stall or a drift of the
    machine lands on every arm alike."""
    rows: dict[Hashable, list[Row]] = {arm: [] for arm in operations}
    arms = list(operations)
    perf = time.perf_counter_ns
    for seq in range(warmup + count):
        for arm in order.sample(arms, len(arms)):
            sent = perf()
            error = None
            try:
                operations[arm]()
            except Exception as exc:  # counted, never dropped
                error = f"{type(exc).__name__}: {exc}"[:200]
            rows[arm].append((0, seq, sent, sent, perf(), error, seq < warmup))
    return rows


def _quota(worker: int, schedule: Schedule) -> int | None:
    """This worker's share of the measured count (None when the run is timed)."""
    if schedule.count is None:
        return None
    share, extra = divmod(schedule.count, schedule.concurrency)
    return share + (1 if worker < extra else 0)


def _loop(worker: int, operation: Operation, schedule: Schedule, start_ns: int, out: list[Row]) -> None:
    quota = _quota(worker, schedule)
    workers = schedule.concurrency
    interval = int(1e9 * workers / schedule.rate) if schedule.rate else 0
    offset = int(1e9 * worker / schedule.rate) if schedule.rate else 0
    warmup_end: int | None = None
    seq = 0
    measured = 0
    perf = time.perf_counter_ns
    while True:
        warming = seq < schedule.warmup
        if not warming:
            if warmup_end is None:
                warmup_end = perf()
            if quota is not None and measured >= quota:
                return
            if schedule.duration is not None and perf() - warmup_end >= schedule.duration * 1e9:
                return
        if interval:
            intended = start_ns + offset + seq * interval
            _wait_until(intended)
        sent = perf()
        if not interval:
            intended = sent
        error = None
        try:
            operation()
        except Exception as exc:  # counted, never dropped
            error = f"{type(exc).__name__}: {exc}"[:200]
        out.append((worker, seq, intended, sent, perf(), error, warming))
        seq += 1
        if not warming:
            measured += 1


def _wait_until(target_ns: int) -> None:
    remaining = target_ns - time.perf_counter_ns()
    if remaining > SPIN_NS:
        time.sleep((remaining - SPIN_NS) / 1e9)
    while time.perf_counter_ns() < target_ns:
        pass
