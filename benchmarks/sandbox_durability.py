"""Aurora-like durability of the sandbox, measured as a careful user would: writers under the heaviest load the
machine gives record every acknowledged insert id, the writer's database process is killed with `kill -9`, and
the next kill comes as soon as the new writer acknowledges writes again (no rest for the replicas to catch up).
After each kill and at the end, the acknowledged ids missing from the writer are counted; Aurora loses none.
Also the daemon's idle CPU with 1 and with 10 labs (clusters of a writer and a reader).

    .venv/bin/python benchmarks/sandbox_durability.py [--kills 20] [--writers 8] [--idle-seconds 10]

Downtime of a kill: from the last write acknowledged before it to the first acknowledged after it, over every
writer thread; each thread reconnects through the cluster endpoint, as a learner's app does. A write whose
outcome the client never learned (the connection broke) is not counted as acknowledged.
`tests/integration/test_sandbox_writer_kills.py` runs the same harness with fewer kills.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from labkit.errors import LabkitError

TABLE = "acked"
ID_SPACE = 10**9  # writer thread k writes ids k * ID_SPACE + 0, 1, 2, ...


@dataclass
class Kill:
    """One `kill -9` of the writer: whom, the downtime it caused, and what was missing after it."""

    writer: str
    new_writer: str
    downtime: float
    acknowledged: int  # acknowledged so far (before the count)
    lost: int  # of those, missing from the writer once it took writes again


@dataclass
class KillRun:
    kills: list[Kill] = field(default_factory=list)
    stalled: str | None = None  # a kill after which no write was acknowledged in time (the run stopped there)
    acknowledged: int = 0
    lost: int = 0  # acknowledged ids missing from the final writer, once the load stopped
    ids: set[int] = field(default_factory=set, repr=False)  # every acknowledged id

    def summary(self) -> str:
        downtimes = [k.downtime for k in self.kills]
        lost_after = [k.lost for k in self.kills]
        stalled = f"; STALLED: {self.stalled}" if self.stalled else ""
        return (
            f"kills: {len(self.kills)}, acknowledged writes: {self.acknowledged}, lost at the end: {self.lost}, "
            f"lost after a kill (max): {max(lost_after, default=0)}, kills that lost any: "
            f"{sum(1 for n in lost_after if n)}; downtime s: p50 {statistics.median(downtimes):.2f}, "
            f"max {max(downtimes):.2f}{stalled}"
            if downtimes
            else f"no kill completed{stalled}"
        )


class Writers:
    """`count` threads inserting ids as fast as the writer takes them, each acknowledged id kept with its time."""

    def __init__(self, endpoint: str, password: str, count: int) -> None:
        self.endpoint = endpoint
        self.password = password
        self.acked: list[list[tuple[int, float, float]]] = [[] for _ in range(count)]  # (id, when, connected)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(k,), daemon=True) for k in range(count)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _write(self, k: int) -> None:
        n = k * ID_SPACE
        acked = self.acked[k]
        while not self.stop.is_set():
            try:
                opened = time.monotonic()
                with connect(self.endpoint, self.password) as conn, conn.cursor() as cur:
                    while not self.stop.is_set():
                        cur.execute(f"INSERT INTO {TABLE} VALUES (%s)", (n,))
                        acked.append((n, time.monotonic(), opened))  # list.append is atomic: no lock needed
                        n += 1
            except (pymysql.err.MySQLError, OSError, LabkitError):  # LabkitError: no writer to resolve yet
                n += 1  # that write's outcome is unknown: never counted, never reused
                self.stop.wait(0.01)

    def times(self) -> list[float]:
        return sorted(t for acked in self.acked for _, t, _ in list(acked))

    def count(self) -> int:
        return sum(len(acked) for acked in self.acked)

    def ids(self) -> set[int]:
        return {n for acked in self.acked for n, _, _ in list(acked)}

    def connected_after(self, moment: float) -> int:
        """Writes acknowledged on connections opened after `moment` (by the writer that took over, not by
        answers the killed one sent just before it died)."""
        return sum(1 for acked in self.acked for _, _, opened in list(acked[-50:]) if opened > moment)

    def first_connected_after(self, moment: float) -> float:
        return min(t for acked in self.acked for _, t, opened in list(acked) if opened > moment)


def connect(endpoint: str, password: str) -> pymysql.Connection:
    from labkit import sandbox

    host, port = sandbox.resolve(endpoint, timeout=5)
    return pymysql.connect(
        host=host, port=port, user="admin", password=password, database="shop", autocommit=True,
        connect_timeout=2, read_timeout=30, write_timeout=30,
    )  # fmt: skip


def cluster(backend: Any, name: str) -> tuple[dict[str, Any], str]:
    """A cluster of a writer and a reader made with plain RDS calls; returns (cluster, master password)."""
    rds = backend.client("rds")
    created = rds.create_db_cluster(
        DBClusterIdentifier=name, Engine="aurora-mysql", MasterUsername="admin", DatabaseName="shop",
        ManageMasterUserPassword=True,
    )["DBCluster"]  # fmt: skip
    for node in ("a", "b"):
        rds.create_db_instance(
            DBInstanceIdentifier=f"{name}-{node}", DBClusterIdentifier=name, Engine="aurora-mysql",
            DBInstanceClass="db.t4g.medium",
        )  # fmt: skip
    rds.get_waiter("db_instance_available").wait(
        Filters=[{"Name": "db-cluster-id", "Values": [name]}], WaiterConfig={"Delay": 0.1, "MaxAttempts": 600}
    )
    secret = backend.client("secretsmanager").get_secret_value(SecretId=created["MasterUserSecret"]["SecretArn"])
    return created, json.loads(secret["SecretString"])["password"]


def _writer_of(name: str, timeout: float = 30.0) -> tuple[str, int]:
    """The cluster's writer as the sandbox's endpoint map has it, and its process id (once that process runs: the
    state file names a restarted server's new process a moment after it answers)."""
    from labkit.sandbox.processes import pid_alive
    from labkit.sandbox.state import read_state

    deadline = time.monotonic() + timeout
    while True:
        state = read_state()
        writer = (state.clusters.get(name) or {}).get("writer") if state else None
        pid = state.instances.get(writer, {}).get("pid") if state and writer else None
        if writer and pid and pid_alive(pid):
            return writer, int(pid)
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster {name} has no running writer")
        time.sleep(0.01)


def missing(endpoint: str, password: str, acknowledged: set[int]) -> int:
    """How many of the `acknowledged` ids a new connection to `endpoint` does not find."""
    with connect(endpoint, password) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {TABLE}")
        stored = {row[0] for row in cur.fetchall()}
    return len(acknowledged - stored)


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:.0f} s")
        time.sleep(0.005)


def kill_and_count(
    created: dict[str, Any], password: str, kills: int, writers: int = 8, timeout: float = 60.0
) -> KillRun:
    """`kills` kill -9 of the writer under `writers` threads of inserts, each as soon as the new writer took
    writes after the previous one; counts acknowledged ids missing from the writer after each and at the end."""
    name, endpoint = created["DBClusterIdentifier"], created["Endpoint"]
    with connect(endpoint, password) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY)")
    run = KillRun()
    with Writers(endpoint, password, writers) as load:
        _wait(lambda: load.count() >= 200, timeout, "no write was acknowledged")
        for _ in range(kills):
            writer, pid = _writer_of(name)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            try:
                _wait(
                    lambda moment=killed_at: load.connected_after(moment) >= writers,
                    timeout,
                    f"no write acknowledged after killing {writer}",
                )
            except RuntimeError as exc:
                run.stalled = str(exc)
                break
            before = max((t for t in load.times() if t <= killed_at), default=killed_at)
            after = load.first_connected_after(killed_at)
            acknowledged = load.ids()
            lost = missing(endpoint, password, acknowledged)
            run.kills.append(Kill(writer, _writer_of(name)[0], after - before, len(acknowledged), lost))
            print(f"  kill {len(run.kills)}: {run.kills[-1]}", flush=True)
    acknowledged = load.ids()
    run.ids, run.acknowledged, run.lost = acknowledged, len(acknowledged), missing(endpoint, password, acknowledged)
    return run


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(seconds: float) -> float:
    """The daemon's CPU use (percent of one core) while nothing happens."""
    from labkit.sandbox.state import read_state

    state = read_state()
    assert state is not None
    time.sleep(2)  # let the last reconciler pass end
    start_cpu, start = _cpu_seconds(state.daemon_pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (_cpu_seconds(state.daemon_pid) - start_cpu) / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--writers", type=int, default=8, help="writer threads (the load)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="0: skip the idle CPU measurement")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="labkit-bench-")
    os.environ["LABKIT_HOME"] = home
    from labkit import sandbox
    from labkit.sandbox.backend import SandboxBackend

    sandbox.up()
    try:
        backend = SandboxBackend()
        created, password = cluster(backend, "lab0")
        idle_one = idle_cpu(args.idle_seconds) if args.idle_seconds else None
        print(f"kill -9 of the writer, {args.kills} times, each as soon as the new writer takes writes, under "
              f"{args.writers} writer threads:")  # fmt: skip
        run = kill_and_count(created, password, args.kills, args.writers)
        idle_ten = None
        if args.idle_seconds:
            for i in range(1, 10):
                cluster(backend, f"lab{i}")
            idle_ten = idle_cpu(args.idle_seconds)
    finally:
        sandbox.down(forget=True)
        shutil.rmtree(home, ignore_errors=True)
    print(run.summary())
    if idle_one is not None and idle_ten is not None:
        print(f"daemon idle CPU, % of one core: 1 lab {idle_one:.2f}, 10 labs {idle_ten:.2f}")


if __name__ == "__main__":
    main()
