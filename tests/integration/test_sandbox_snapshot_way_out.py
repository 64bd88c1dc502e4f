"""The way out of a snapshot that cannot be loaded (move control-plane.snapshot aside, as the error says) leaves a
working lab: the lab rebuilt with the same names takes its new managed password, and the old databases are kept
under data/orphans/, never deleted (issue 27, item 4).

Its own LABKIT home (and so its own daemon): it stops and starts it on purpose.
"""

from __future__ import annotations

import pymysql
from support.sandbox_lab import aurora_cluster

from labkit import sandbox
from labkit.sandbox.daemon.persist import snapshot_path


def _backend():
    from labkit.sandbox.backend import SandboxBackend

    return SandboxBackend()


def _answer(cluster: dict, password: str) -> int:
    host, port = sandbox.resolve(cluster["Endpoint"])
    with pymysql.connect(
        host=host, port=port, user=cluster["MasterUsername"], password=password, connect_timeout=5
    ) as conn, conn.cursor() as cur:  # fmt: skip
        cur.execute("SELECT 41 + 1")
        return int(cur.fetchone()[0])


def test_moving_the_snapshot_aside_leaves_a_lab_that_takes_its_new_password(own_home):
    sandbox.up(quiet=True)
    cluster, old_password = aurora_cluster(_backend(), "wayout", ("a",))
    assert _answer(cluster, old_password) == 42
    sandbox.down(quiet=True)
    snapshot = snapshot_path(own_home)
    snapshot.rename(snapshot.with_name(snapshot.name + ".aside"))  # the error's way out

    sandbox.up(quiet=True)
    cluster, new_password = aurora_cluster(_backend(), "wayout", ("a",))  # the same lab, rebuilt
    assert new_password != old_password
    assert _answer(cluster, new_password) == 42  # was: Access denied (the old data directory, the old password)
    kept = sorted(p.name for p in (own_home / "data" / "orphans").iterdir())
    assert any(name.startswith("databases.json-") for name in kept) and any(
        name.startswith("wayout-a-") for name in kept
    )
