"""What one learner's sandbox costs: memory and CPU idle, while their lab is built (apply), and during a benchmark.

The figures behind "learners per machine" (README, "Running a class"): the sandbox's processes (the daemon, its
database servers, app hosts) are sampled from /proc every 0.2 s in a fresh LABKIT home; memory is the sum of
their resident sets (PSS where the kernel has it, so shared pages count once), CPU the seconds they used over each
phase's wall time. The hub's own share and a learner's server (JupyterLab and a kernel) come from the hub test
(test-artifacts/hub-figures.json).

    .venv/bin/python benchmarks/hub_capacity.py
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _sample(root: int) -> tuple[float, float]:
    """(memory MB, CPU seconds so far) of `root` and its descendants."""
    memory, cpu = 0, 0.0
    for pid in _tree(root):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            memory += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK
        except (OSError, StopIteration, IndexError):
            continue
    return memory / 1024, cpu


class Phase:
    """Peak memory and CPU use of the sandbox while a block runs."""

    def __init__(self, root: int) -> None:
        self.root, self.peak, self.stop = root, 0.0, threading.Event()

    def __enter__(self) -> Phase:
        self.start, (_, self.cpu0) = time.monotonic(), _sample(self.root)
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self) -> None:
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, _sample(self.root)[0])

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        memory, cpu = _sample(self.root)
        self.peak = max(self.peak, memory)
        self.seconds = time.monotonic() - self.start
        self.cores = (cpu - self.cpu0) / self.seconds

    def row(self) -> dict[str, float]:
        return {"peak_mb": round(self.peak), "cpu_cores": round(self.cores, 3), "seconds": round(self.seconds, 1)}


def main() -> None:
    os.environ["LABKIT_HOME"] = tempfile.mkdtemp(prefix="labkit-capacity-")
    import labkit
    from labkit import sandbox
    from labkit.config import LabConfig
    from labkit.sandbox.backend import SandboxBackend

    started = time.monotonic()
    state = sandbox.up(quiet=True)
    figures: dict[str, object] = {"sandbox_up_seconds": round(time.monotonic() - started, 1)}
    backend, config = SandboxBackend(), LabConfig()
    try:
        time.sleep(5)  # the warm-up thread finishes
        with Phase(state.daemon_pid) as idle:
            time.sleep(30)
        figures["idle_empty"] = idle.row()
        with Phase(state.daemon_pid) as apply:
            for stage in ("network", "database", "compute"):
                labkit.apply(config, backend, only=stage, stream=io.StringIO())
            sandbox.wait_for_databases(2, timeout=120)
        figures["apply_network_database_compute"] = apply.row()
        with Phase(state.daemon_pid) as idle_lab:
            time.sleep(30)
        figures["idle_with_lab"] = idle_lab.row()
        with Phase(state.daemon_pid) as bench:
            labkit.benchmark(("writer", "reader"), workload="select1", path="direct", count=3000, config=config,
                             backend=backend)  # fmt: skip
        figures["benchmark_direct_select1_3000x2"] = bench.row()
    finally:
        sandbox.down(quiet=True)
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
