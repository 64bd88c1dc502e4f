"""The failover lab on AWS, on the lab's EC2 instance: the strategies write from inside the VPC.

labkit sends this file, the strategies, their harness (app.py, loops.py), labkit.engines, labkit.errors and the
web app's module (its cluster lookup) as a small `labkit` tree with SSM Run Command (remote.py). Here the cluster's
login is read with the instance role, as the web app reads it; every connection resolves its name with the VPC's
DNS, asked anew each time (socket.getaddrinfo: what an application's driver does), so the cluster endpoint's move
after a failover reaches each strategy exactly as it reaches an application. The failure itself is made by the
learner's side through the RDS API at `fail_at` (wall-clock seconds, both clocks kept by NTP); this side writes
from `baseline` s before it until every strategy recovered or `after` s, then recounts every acknowledged write on
the writer and prints the samples packed on one line (`LABKIT-FAILOVER <base64>`), within Run Command's 24,000
characters of output.

Runs on the instance's Python 3.9 with boto3 and the engine's driver (the user data installed them) and, for the
pool strategy, SQLAlchemy (the command installs it once when missing).

    python3 -m labkit.failover_lab.onhost SPEC_BASE64
"""

from __future__ import annotations

import base64
import importlib
import json
import platform
import socket
import sys
import time
import zlib
from typing import Any

from labkit.app.server import Settings, discover
from labkit.engines import ENGINES
from labkit.errors import LabkitError
from labkit.failover_lab.app import Cluster
from labkit.failover_lab.loops import Loops, endpoint_moved

MARKER = "LABKIT-FAILOVER "
OUTPUT_LIMIT = 23_000  # Run Command returns at most 24,000 characters of standard output
START_MARGIN = 2.0  # s before the baseline: the strategies' first connections (TLS included)
MOVE_TIMEOUT = 60.0  # s for the cluster endpoint to name the writer again before the run
MAX_ERROR_TEXTS = 30  # distinct error messages kept word for word; any more keep their kind only
READS_BEFORE_CALL = 2.0  # s: reads of probes sent earlier than this before the failure are not sent back


def resolve(host: str, port: int) -> tuple[str, int]:
    """The VPC's DNS, asked anew for each connection, as an application's driver asks the system resolver."""
    address, resolved_port = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][:2]
    return str(address), int(resolved_port)


def cluster_writer(rds: Any, identifier: str) -> str | None:
    """The writer the RDS API names (rds:DescribeDBClusters on this cluster: the instance role's own grant)."""
    members = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]["DBClusterMembers"]
    return next((m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"]), None)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """One failure's run as the spec describes it; returns what pack() sends back."""
    import boto3  # installed by the user data, as the web app's lookup needs it

    cluster = Cluster(**spec["cluster"])
    login = discover(Settings(cluster=cluster.identifier, region=spec["region"]))
    engine = ENGINES[spec["engine"]]
    strategies = {name: importlib.import_module(f"labkit.failover_lab.{name}").run for name in spec["order"]}
    rds = boto3.client("rds", region_name=spec["region"])
    deadline = time.monotonic() + MOVE_TIMEOUT
    while not endpoint_moved(cluster, spec["writer_before"], resolve):  # the last failover's DNS move, done
        if time.monotonic() > deadline:
            raise LabkitError(f"{cluster.endpoint} does not resolve to {spec['writer_before']}'s address",
                              field="failover", fix="wait a minute and run the lab again")  # fmt: skip
        time.sleep(1.0)
    time.sleep(max(0.0, spec["fail_at"] - spec["baseline"] - START_MARGIN - time.time()))
    loops = Loops(strategies, spec["order"], spec["delays"], cluster, engine, login, resolve, spec["interval"],
                  spec["ca_file"])  # fmt: skip
    table = loops.reader
    connection = table.connect(table.resolve(cluster.endpoint))
    try:
        cursor = connection.cursor()
        cursor.execute(engine.sql.bench_failover)
        cursor.close()
    finally:
        connection.close()
    loops.start()
    try:
        loops.wait_baseline(spec["baseline"], timeout=max(1.0, spec["fail_at"] - time.time()))
        time.sleep(max(0.0, spec["fail_at"] - time.time()))
        call_s = spec["fail_at"] - loops.epoch
        writer_after = loops.watch(lambda: cluster_writer(rds, cluster.identifier), spec["writer_before"], call_s,
                                   spec["after"])  # fmt: skip
    finally:
        loops.end()
    counted = loops.lost(writer_after)
    meta = {"python": platform.python_version(), "host": platform.node(),
            engine.dialect.dbapi.module: engine.dialect.dbapi.version()}  # fmt: skip
    return {"samples": loops.samples(), "seen": loops.seen, "epoch": loops.epoch, "call_s": call_s,
            "writer_after": writer_after, "base": loops.base, **counted, "meta": meta}  # fmt: skip


def _ms(seconds: float) -> int:
    return -1 if seconds != seconds else round(seconds * 1000)  # NaN (not acknowledged): -1


def _index(values: list[Any], value: Any) -> int:
    if value is None:
        return -1
    if value not in values:
        values.append(value)
    return values.index(value)


def _deltas(values: list[int]) -> list[int]:
    return [b - a for a, b in zip([0, *values[:-1]], values)]  # noqa: B905 (no strict= on 3.9)


def _sums(deltas: list[int]) -> list[int]:
    total, values = 0, []
    for delta in deltas:
        total += delta
        values.append(total)
    return values


def pack(result: dict[str, Any]) -> str:
    """The samples as columns of milliseconds (delta-coded), names and errors as indexes into lists, zlib,
    base64: a few characters a sample. Only the reads the report uses come back (those of writes sent from
    READS_BEFORE_CALL s before the failure on)."""
    samples, base = result["samples"], result["base"]
    names: dict[str, list[Any]] = {"strategy": [], "server": [], "kind": [], "error": []}
    errors = []
    for sample in samples:
        text = sample["error"]
        if text is not None and text not in names["error"] and len(names["error"]) >= MAX_ERROR_TEXTS:
            text = f"({sample['error_kind']}: more distinct errors than {MAX_ERROR_TEXTS})"
        errors.append(_index(names["error"], text))
    sent = [_ms(s["sent_s"]) for s in samples]
    kept = {s["probe"] for s in samples if s["sent_s"] >= result["call_s"] - READS_BEFORE_CALL}
    reads = sorted((probe, seen) for probe, seen in result["seen"].items() if probe in kept)
    columns = {
        "strategy": [_index(names["strategy"], s["strategy"]) for s in samples],
        "probe": _deltas([s["probe"] - base for s in samples]),
        "sent": _deltas(sent),
        "acked": [-1 if _ms(s["acked_s"]) < 0 else _ms(s["acked_s"]) - t for s, t in zip(samples, sent)],  # noqa: B905
        "done": [_ms(s["done_s"]) - t for s, t in zip(samples, sent)],  # noqa: B905
        "server": [_index(names["server"], s["served_by"]) for s in samples],
        "kind": [_index(names["kind"], s["error_kind"]) for s in samples],
        "error": errors,
        "read_probe": _deltas([probe - base for probe, _ in reads]),
        "read_seen": _deltas([_ms(seen[0]) for _, seen in reads]),
        "read_server": [_index(names["server"], seen[1]) for _, seen in reads],
        **{f"{kind}_names": values for kind, values in names.items()},
        **{key: result[key] for key in ("epoch", "call_s", "writer_after", "base", "acknowledged", "lost", "meta")},
    }
    return base64.b64encode(zlib.compress(json.dumps(columns, separators=(",", ":")).encode(), 9)).decode()


def unpack(text: str) -> dict[str, Any]:
    """run()'s result again: samples as App records them (times in s, to the millisecond), reads as Loops.seen."""
    columns = json.loads(zlib.decompress(base64.b64decode(text)))
    base = columns["base"]

    def name(kind: str, index: int) -> Any:
        return columns[f"{kind}_names"][index] if index >= 0 else None

    samples = []
    probes, sent = _sums(columns["probe"]), _sums(columns["sent"])
    for i, strategy in enumerate(columns["strategy"]):
        acked = columns["acked"][i]
        samples.append({"strategy": name("strategy", strategy), "probe": base + probes[i], "sent_s": sent[i] / 1000,
                        "acked_s": float("nan") if acked < 0 else (sent[i] + acked) / 1000, "acknowledged": acked >= 0,
                        "served_by": name("server", columns["server"][i]), "error_kind": name("kind", columns["kind"][i]),
                        "error": name("error", columns["error"][i]), "done_s": (sent[i] + columns["done"][i]) / 1000})  # fmt: skip
    seen = {
        base + probe: (at / 1000, name("server", server))
        for probe, at, server in zip(_sums(columns["read_probe"]), _sums(columns["read_seen"]), columns["read_server"])  # noqa: B905
    }
    keys = ("epoch", "call_s", "writer_after", "base", "acknowledged", "lost", "meta")
    return {"samples": samples, "seen": seen, **{key: columns[key] for key in keys}}


def main(argv: list[str]) -> int:
    spec = json.loads(base64.b64decode(argv[0]))
    try:
        packed = pack(run(spec))
    except LabkitError as exc:
        sys.stderr.write(f"labkit: {exc}\n")
        return 2
    if len(packed) + len(MARKER) > OUTPUT_LIMIT:
        sys.stderr.write(f"labkit: {len(packed)} characters of samples do not fit Run Command's output; "
                         "keep writing for a shorter time after the failure (after) or less often (interval)\n")  # fmt: skip
        return 3
    print(MARKER + packed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
