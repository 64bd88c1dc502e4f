"""Aurora-like health of the sandbox, measured in one run: automatic failover after `kill -9` of the writer
under a write load (downtime and lost acknowledged writes, over N kills), and the daemon's idle CPU with 1
and with 10 labs (clusters of a writer and a reader).

    .venv/bin/python benchmarks/sandbox_durability.py [--kills 20] [--idle-seconds 10]

Downtime is the longest gap between two consecutive acknowledged writes around the kill, seen by one client that reconnects through the cluster endpoint, as a learner's app does.
A write whose outcome the client never learned (the connection broke) is not counted as acknowledged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pymysql


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cluster(backend, name: str) -> tuple[dict, str]:
    rds = backend.client("rds")
    cluster = rds.create_db_cluster(
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
    secret = backend.client("secretsmanager").get_secret_value(SecretId=cluster["MasterUserSecret"]["SecretArn"])
    return cluster, json.loads(secret["SecretString"])["password"]


def _connect(endpoint: str, password: str) -> pymysql.Connection:
    from labkit import sandbox

    host, port = sandbox.resolve(endpoint)
    return pymysql.connect(
        host=host, port=port, user="admin", password=password, database="shop", autocommit=True,
        connect_timeout=1, read_timeout=1, write_timeout=1,
    )  # fmt: skip


def _writer(rds, name: str) -> str:
    members = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["DBClusterMembers"]
    return next(m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"])


def _available(rds, name: str) -> bool:
    found = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [name]}])["DBInstances"]
    return all(i["DBInstanceStatus"] == "available" for i in found)


def one_kill(rds, cluster: dict, password: str, table: str) -> tuple[float, int, int]:
    """Kill the writer under load; returns (downtime s, acknowledged writes, lost acknowledged writes)."""
    from labkit.sandbox.state import read_state

    with _connect(cluster["Endpoint"], password) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    acked: list[tuple[int, float]] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            try:
                with _connect(cluster["Endpoint"], password) as conn, conn.cursor() as cur:
                    while not stop.is_set():
                        cur.execute(f"INSERT INTO {table} VALUES (%s)", (n,))
                        acked.append((n, time.monotonic()))
                        n += 1
            except pymysql.err.MySQLError:
                n += 1
                time.sleep(0.01)

    thread = threading.Thread(target=write)
    thread.start()
    while len(acked) < 100:
        time.sleep(0.01)
    old = _writer(rds, cluster["DBClusterIdentifier"])
    killed_at = time.monotonic()
    os.kill(read_state().instances[old]["pid"], signal.SIGKILL)
    while not any(t > killed_at for _, t in acked[-50:]) or len([t for _, t in acked if t > killed_at]) < 20:
        time.sleep(0.01)
    stop.set()
    thread.join()
    times = [t for _, t in acked if t > killed_at - 1.0]
    downtime = max(b - a for a, b in itertools.pairwise(times))  # the longest wait between two acknowledged writes
    with _connect(cluster["Endpoint"], password) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {table}")
        stored = {row[0] for row in cur.fetchall()}
    lost = len({n for n, _ in acked} - stored)
    deadline = time.monotonic() + 30
    while not _available(rds, cluster["DBClusterIdentifier"]) and time.monotonic() < deadline:
        time.sleep(0.05)  # the old writer is back as a reader before the next kill
    return downtime, len(acked), lost


def idle_cpu(seconds: float) -> float:
    """The daemon's CPU use (percent of one core) while nothing happens."""
    from labkit.sandbox.state import read_state

    pid = read_state().daemon_pid
    time.sleep(2)  # let the last reconciler pass end
    start_cpu, start = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (_cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="labkit-bench-")
    os.environ["LABKIT_HOME"] = home
    from labkit import sandbox
    from labkit.sandbox.backend import SandboxBackend

    sandbox.up()
    try:
        backend = SandboxBackend()
        rds = backend.client("rds")
        cluster, password = _cluster(backend, "lab0")
        idle_one = idle_cpu(args.idle_seconds)
        runs = [one_kill(rds, cluster, password, f"acked{i}") for i in range(args.kills)]
        for i in range(1, 10):
            _cluster(backend, f"lab{i}")
        idle_ten = idle_cpu(args.idle_seconds)
    finally:
        sandbox.down(forget=True)
        shutil.rmtree(home, ignore_errors=True)
    downtimes = [d for d, _, _ in runs]
    if runs:
        print(f"automatic failover after kill -9 of the writer, {len(runs)} runs under a write load:")
        print(
            f"  downtime s: median {statistics.median(downtimes):.2f}, min {min(downtimes):.2f}, "
            f"max {max(downtimes):.2f}"
        )
        print(f"  acknowledged writes: {sum(a for _, a, _ in runs)}, lost: {sum(lost for _, _, lost in runs)}")
    print(f"daemon idle CPU, % of one core: 1 lab {idle_one:.2f}, 10 labs {idle_ten:.2f}")


if __name__ == "__main__":
    main()
