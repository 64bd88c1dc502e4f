"""No acknowledged write is lost however often the writer dies: `kill -9` of the writer's database, five times
back to back under a write load, each as soon as the new writer took writes; then the readers hold every
acknowledged row too. The harness is the one `make bench` runs with 20 kills (benchmarks/sandbox_durability.py).

Its own LABKIT home (and so its own daemon): it kills its servers on purpose.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

from labkit import sandbox
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.state import read_state

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "sandbox_durability.py"


def _harness():
    spec = importlib.util.spec_from_file_location("sandbox_durability", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _reader_misses(harness, cluster: dict, password: str, acknowledged: set[int], timeout: float = 30.0) -> int:
    """Acknowledged ids the reader endpoint does not return, once the reader has had time to catch up."""
    deadline = time.monotonic() + timeout
    while True:
        missing = harness.missing(cluster["ReaderEndpoint"], password, acknowledged)
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.1)


def test_five_writer_kills_back_to_back_under_load_lose_no_acknowledged_write(own_home):
    harness = _harness()
    sandbox.up(quiet=True)
    cluster, password = harness.cluster(SandboxBackend(), "kills")
    run = harness.kill_and_count(cluster, password, kills=5, writers=4, timeout=45)
    print(run.summary())
    assert run.stalled is None and len(run.kills) == 5
    assert [kill.lost for kill in run.kills] == [0] * 5  # after each failover, every acknowledged write is there
    assert run.acknowledged > 0 and run.lost == 0
    state = sandbox.wait_for_databases(2)
    roles = sorted(info["role"] for info in state.instances.values())
    assert roles == ["reader", "writer"], roles  # the old writer is back as a reader that replicates
    assert _reader_misses(harness, cluster, password, run.ids) == 0  # and it holds every acknowledged write
    assert read_state().clusters["kills"]["readers"]
