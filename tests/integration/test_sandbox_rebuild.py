"""A reader that can no longer replicate (a statement it cannot apply: its data diverged from the writer's) is
rebuilt from the writer with real MariaDB: out of the reader endpoint until it has caught up, its old data kept
under `data/orphans/`, never deleted.
"""

from __future__ import annotations

import time

from support.sandbox_lab import admin_connection, aurora_cluster

from labkit import sandbox
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.state import read_state


def _rows(instance: str) -> list[tuple]:
    with admin_connection(instance) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM shop.kept ORDER BY id")
        return list(cur.fetchall())


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_reader_that_cannot_apply_the_writers_changes_is_rebuilt_and_its_data_kept(own_home):
    sandbox.up(quiet=True)
    aurora_cluster(SandboxBackend(), "fix", nodes=("a", "b"))
    state = read_state()
    writer = state.clusters["fix"]["writer"]
    reader = next(name for name in state.instances if name != writer)
    with admin_connection(writer) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE shop.kept (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO shop.kept VALUES (1)")
    _wait_for(lambda: _rows(reader) == [(1,)], "the reader never replicated the first row")
    with admin_connection(reader) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO shop.kept VALUES (2)")  # a write the writer never made: the two now differ
    with admin_connection(writer) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO shop.kept VALUES (2)")  # the reader cannot apply it: duplicate key

    broken_pid = state.instances[reader]["pid"]

    def rebuilt() -> bool:  # a new server for the reader, back in the reader endpoint
        current = read_state()
        return (
            current is not None
            and current.instances[reader]["pid"] != broken_pid
            and current.clusters["fix"]["readers"] == [reader]
        )

    _wait_for(rebuilt, "the reader was not rebuilt")
    assert _rows(reader) == [(1,), (2,)]  # the writer's rows, from the writer's history
    kept = list((own_home / "data" / "orphans").glob(f"{reader}-*"))
    assert len(kept) == 1 and (kept[0] / "shop").is_dir()  # the diverged data, kept
    events = SandboxBackend().client("rds").describe_events(SourceIdentifier=reader, SourceType="db-instance")
    assert any("rebuilt" in e["Message"] for e in events["Events"])
    assert read_state().instances[reader]["status"] == "available"
