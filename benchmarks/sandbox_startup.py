"""How fast the sandbox starts and how much memory it holds, measured in one run.

    .venv/bin/python benchmarks/sandbox_startup.py [--engine aurora-postgresql]

Prints, each to the first successful query on both the writer and the reader endpoint of a new writer + reader
cluster (after the `db_instance_available` waiter, as a learner's code waits): a new user's first `up` (a brand-new
LABKIT home and an empty cache folder, so the engine's template is made too), a cold `up` (another brand-new home of
the same user: the template is the user's, already made; before templates were shared, a new home made its own, so
earlier "cold" figures compare with "new user"), a warm `up` (the second in that home); the restore of that lab by
`down` + `up` to its first query, then of two labs; the resident memory of the daemon and each database server;
and what the control-plane saves cost each daemon (the count and the time, from the sandbox log). Any engine labkit
describes; the queries go through its own driver. The cache folder is a temporary one (XDG_CACHE_HOME).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from labkit.engines import DEFAULT_ENGINE, ENGINES, AuroraEngine, engine_for
from labkit.errors import LabkitError


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _query_both(cluster: dict, password: str) -> None:
    from labkit import sandbox

    dbapi = engine_for(cluster["Engine"]).dialect.dbapi
    for endpoint in (cluster["Endpoint"], cluster["ReaderEndpoint"]):
        host, port = sandbox.resolve(endpoint)
        conn = dbapi.connect(host, port, "admin", password, "shop", connect_timeout=10, timeout=10)
        conn.cursor().execute("SELECT 1")
        conn.close()


def restore(clusters: list[str]) -> float:
    """`down`, then `up` until every lab's writer and reader answer again (the labs are kept on disk)."""
    from labkit import sandbox
    from labkit.sandbox.backend import SandboxBackend

    sandbox.down()
    started = time.monotonic()
    sandbox.up()
    backend = SandboxBackend()
    rds = backend.client("rds")
    for cluster in clusters:
        rds.get_waiter("db_instance_available").wait(
            Filters=[{"Name": "db-cluster-id", "Values": [cluster]}], WaiterConfig={"Delay": 0.05, "MaxAttempts": 600}
        )
        described = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
        arn = described["MasterUserSecret"]["SecretArn"]
        secret = backend.client("secretsmanager").get_secret_value(SecretId=arn)
        _query_both(described, json.loads(secret["SecretString"])["password"])
    return time.monotonic() - started


def one_run(cluster: str, engine: AuroraEngine) -> dict[str, float]:
    from labkit import sandbox
    from labkit.sandbox.backend import SandboxBackend

    marks = {"start": time.monotonic()}
    sandbox.up()
    marks["up"] = time.monotonic()
    backend = SandboxBackend()
    rds = backend.client("rds")
    created = rds.create_db_cluster(
        DBClusterIdentifier=cluster, Engine=engine.name, EngineVersion=engine.catalog.default,
        MasterUsername="admin", DatabaseName="shop", ManageMasterUserPassword=True,
    )["DBCluster"]  # fmt: skip
    for node in ("writer", "reader"):
        rds.create_db_instance(
            DBInstanceIdentifier=f"{cluster}-{node}", DBClusterIdentifier=cluster,
            Engine=engine.name, DBInstanceClass="db.t4g.medium",
        )  # fmt: skip
    marks["created"] = time.monotonic()
    rds.get_waiter("db_instance_available").wait(
        Filters=[{"Name": "db-cluster-id", "Values": [cluster]}], WaiterConfig={"Delay": 0.05, "MaxAttempts": 600}
    )
    secret = backend.client("secretsmanager").get_secret_value(SecretId=created["MasterUserSecret"]["SecretArn"])
    password = json.loads(secret["SecretString"])["password"]
    _query_both(created, password)
    marks["queried"] = time.monotonic()
    state = sandbox.read_state()
    memory = {"daemon": rss_mib(state.daemon_pid)}
    memory.update({name: rss_mib(info["pid"]) for name, info in state.instances.items()})
    return {
        "up_s": marks["up"] - marks["start"],
        "to_first_query_s": marks["queried"] - marks["start"],
        "databases_after_create_s": marks["queried"] - marks["created"],
        **{f"rss_{k}_mib": v for k, v in memory.items()},
    }


def saves_logged(home: str) -> list[tuple[int, float]]:
    """(saves, milliseconds) of each daemon that ran in `home`, as it logged them when it stopped."""
    try:
        text = (Path(home) / "sandbox.log").read_text(errors="replace")
    except OSError:
        return []
    return [(int(n), float(ms)) for n, ms in re.findall(r"(\d+) saves of the control plane, (\d+) ms in all", text)]


def main() -> None:
    from labkit import sandbox

    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default=DEFAULT_ENGINE, choices=sorted(ENGINES), help="the cluster's engine")
    engine = engine_for(parser.parse_args().engine)
    cache = tempfile.mkdtemp(prefix="labkit-bench-cache-")
    os.environ["XDG_CACHE_HOME"] = cache  # a new user's: empty, so the first home makes the template
    homes = [tempfile.mkdtemp(prefix="labkit-bench-") for _ in range(2)]
    print(engine.display_name)
    runs: dict[str, dict[str, float]] = {}
    restored: dict[str, float | str] = {}
    try:
        os.environ["LABKIT_HOME"] = homes[0]
        runs["new user"] = one_run("first", engine)
        sandbox.down(forget=True)
        os.environ["LABKIT_HOME"] = homes[1]
        runs["cold home"] = one_run("cold", engine)
        sandbox.reset()
        sandbox.down()
        runs["warm home"] = one_run("warm", engine)
        for label, clusters in (("one lab", ["warm"]), ("two labs", ["warm", "second"])):
            try:
                if label == "two labs":
                    one_run("second", engine)  # a second lab beside the first
                restored[label] = restore(clusters)
            except LabkitError as exc:  # the figures above still count; the failure is reported, not hidden
                restored[label] = f"failed: {exc.message}"
    finally:
        sandbox.down(forget=True)
        saves = saves_logged(homes[1])
        for folder in (*homes, cache):
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{'figure':32} " + " ".join(f"{label:>10}" for label in runs))
    for key in ("up_s", "to_first_query_s", "databases_after_create_s"):
        print(f"{key:32} " + " ".join(f"{run[key]:10.2f}" for run in runs.values()))
    warm = runs["warm home"]
    for key in sorted(k for k in warm if k.startswith("rss_")):
        print(f"{key:32} {'':10} {'':10} {warm[key]:10.1f}")
    for label, value in restored.items():
        shown = f"{value:10.2f}" if isinstance(value, float) else value
        print(f"{f'restore ({label}): down + up':32} {'':10} {'':10} {shown}")
    total = sum(v for k, v in warm.items() if k.startswith("rss_"))
    print(f"{'rss total (warm) MiB':32} {'':10} {'':10} {total:10.1f}")
    for n, (count, ms) in enumerate(saves, 1):
        print(f"{f'daemon {n}: control-plane saves':32} {count:10d} {ms / max(count, 1):7.1f} ms each")


if __name__ == "__main__":
    main()
