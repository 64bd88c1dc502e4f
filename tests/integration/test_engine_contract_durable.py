"""The engine contract, part 2 (see test_engine_contract.py): no acknowledged write is lost however often the
writer dies, and the data and logins survive `down` + `up` and a daemon killed with `kill -9`, for every engine.

Each test has its own LABKIT home (and so its own daemon): they kill and restart it on purpose.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

import pytest
from support.clusters import ENGINE_NAMES, rows
from support.contract import endpoint_connection, events, until
from support.sandbox_lab import aurora_cluster

from labkit import sandbox
from labkit.engines import engine_for
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.processes import pid_alive
from labkit.sandbox.state import read_state

pytestmark = pytest.mark.parametrize("engine", ENGINE_NAMES)
HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "sandbox_durability.py"


def _harness():
    spec = importlib.util.spec_from_file_location("sandbox_durability", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_no_acknowledged_write_is_lost_over_five_writer_kills_back_to_back_under_load(own_home, engine):
    """`kill -9` of the writer's database five times, each as soon as the new writer took writes, under four writer
    threads (the harness `make bench` runs with 20 kills): a dead writer is failed over to the reader, with RDS's
    events; after each kill and at the end the writer holds every acknowledged row, and then the reader too."""
    harness = _harness()
    sandbox.up(quiet=True)
    backend = SandboxBackend()
    cluster, password = harness.cluster(backend, "kills", engine_for(engine))
    run = harness.kill_and_count(cluster, password, kills=5, writers=4, timeout=60)
    print(run.summary())
    assert run.stalled is None and len(run.kills) == 5
    assert [kill.lost for kill in run.kills] == [0] * 5  # after each failover, every acknowledged write is there
    assert run.acknowledged > 0 and run.lost == 0
    state = sandbox.wait_for_databases(2)
    assert sorted(info["role"] for info in state.instances.values()) == ["reader", "writer"]
    reader = cluster["ReaderEndpoint"]
    until(lambda: harness.missing(engine_for(engine), reader, password, run.ids) == 0, "every row on the reader")
    failovers = [kill for kill in run.kills if kill.new_writer != kill.writer]
    assert failovers, "a dead writer with a healthy reader is failed over"
    rds = backend.client("rds")
    completed = [m for m in events(rds, "db-cluster", "kills") if m.startswith("Completed failover")]
    assert len(completed) >= len(failovers)
    restarted = [m for name in ("kills-a", "kills-b") for m in events(rds, "db-instance", name)]
    assert sum("restarted after its database process exited" in m for m in restarted) >= len(run.kills)


def _lab_answers(engine: str, cluster: dict, password: str, expected: int) -> None:
    """The cluster is back: `expected` rows on the writer, which takes one more, and the reader gets it."""
    sandbox.wait_for_databases(2)
    writer = endpoint_connection(engine, cluster["Endpoint"], password)
    assert rows(writer, "SELECT COUNT(*) FROM kept") == [(expected,)]
    rows(writer, "INSERT INTO kept VALUES (%s)", (expected + 1,))
    writer.close()
    reader = endpoint_connection(engine, cluster["ReaderEndpoint"], password)
    until(lambda: rows(reader, "SELECT COUNT(*) FROM kept") == [(expected + 1,)], "the reader replicating again")
    reader.close()


def test_down_and_up_and_a_killed_daemon_keep_the_data_and_the_logins(own_home, engine):
    sandbox.up(quiet=True)
    cluster, password = aurora_cluster(SandboxBackend(), "durable", engine=engine)
    writer = endpoint_connection(engine, cluster["Endpoint"], password)
    rows(writer, "CREATE TABLE kept (id INT PRIMARY KEY)")
    rows(writer, "INSERT INTO kept VALUES (1)")
    writer.close()
    sandbox.down(quiet=True)
    sandbox.up(quiet=True)
    _lab_answers(engine, cluster, password, expected=1)
    daemon = read_state().daemon_pid
    os.kill(daemon, signal.SIGKILL)  # its servers stop with it
    until(lambda: not pid_alive(daemon), "the daemon to die", timeout=10)
    sandbox.up(quiet=True)
    _lab_answers(engine, cluster, password, expected=2)
