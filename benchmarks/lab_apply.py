"""What a whole lab's `apply` and `destroy` cost on the sandbox, and the control-plane saves' share of it.

    .venv/bin/python benchmarks/lab_apply.py [--runs 3]

Each run applies the default lab (VPC, security groups, IAM, the EC2 instance, the Aurora cluster with a writer and
a reader) in a new LABKIT home's running sandbox, to the point `apply` returns (the control plane's work, not the
databases' start), then destroys it. Printed: each run's apply and destroy time, and the saves the daemon made
(it saves the whole account after every changing call, before the call answers: persist.py) with their time, from
the sandbox log.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def saves_logged(home: Path) -> tuple[int, float]:
    text = (home / "sandbox.log").read_text(errors="replace")
    found = re.findall(r"(\d+) saves of the control plane, (\d+) ms in all", text)
    return (int(found[-1][0]), float(found[-1][1])) if found else (0, 0.0)


def one_run(home: Path) -> dict[str, float]:
    from labkit import sandbox
    from labkit.config import LabConfig
    from labkit.lab.apply import apply
    from labkit.lab.destroy import destroy
    from labkit.sandbox.backend import SandboxBackend

    os.environ["LABKIT_HOME"] = str(home)
    sandbox.up()
    backend = SandboxBackend()
    config = LabConfig(lab="bench", learner="apply")
    started = time.monotonic()
    apply(config, backend, stream=io.StringIO())
    applied = time.monotonic()
    destroy(config, backend, stream=io.StringIO())
    destroyed = time.monotonic()
    sandbox.down(forget=True)
    count, ms = saves_logged(home)
    return {"apply_s": applied - started, "destroy_s": destroyed - applied, "saves": count, "save_ms": ms}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = []
    for _ in range(parser.parse_args().runs):
        home = Path(tempfile.mkdtemp(prefix="labkit-bench-apply-"))
        try:
            runs.append(one_run(home))
        finally:
            shutil.rmtree(home, ignore_errors=True)
    print(f"{'run':>4} {'apply s':>8} {'destroy s':>10} {'saves':>6} {'saves ms':>9} {'ms/save':>8} {'share':>6}")
    for n, run in enumerate(runs, 1):
        share = run["save_ms"] / 1e3 / (run["apply_s"] + run["destroy_s"])
        print(
            f"{n:>4} {run['apply_s']:8.2f} {run['destroy_s']:10.2f} {run['saves']:6d} {run['save_ms']:9.0f} "
            f"{run['save_ms'] / max(run['saves'], 1):8.1f} {share:6.0%}"
        )
    print(f"median apply {statistics.median(r['apply_s'] for r in runs):.2f} s, "
          f"destroy {statistics.median(r['destroy_s'] for r in runs):.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
