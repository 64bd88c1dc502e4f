"""The benchmark's direct path on AWS: the same harness, run on the EC2 instance inside the VPC.

labkit sends this file, the harness, the workloads and the web app's module (for its cluster lookup and its
engine's facts) to the instance with SSM Run Command (see remote.py). Here it reads the cluster's login with
the instance role, as the web app does, runs the harness against the endpoint with the engine's DB-API driver
(the spec carries the engine's facts, as the app's environment does), and prints every sample packed on one
line (`LABKIT-BENCH <base64>`), small enough for Run Command's 24,000-character output.

Runs on the instance's Python 3.9 with the driver and boto3, which the instance's user data installed.

    python3 onhost.py SPEC_BASE64
"""

from __future__ import annotations

import base64
import json
import platform
import sys
import zlib
from typing import Any

try:  # inside labkit
    from labkit.app.server import EngineFacts, Settings, discover
    from labkit.bench import harness, workloads
except ImportError:  # on the instance: shipped side by side, the app module as shop_app.py
    import harness  # type: ignore[no-redef]
    import workloads  # type: ignore[no-redef]
    from shop_app import EngineFacts, Settings, discover  # type: ignore[no-redef]

MARKER = "LABKIT-BENCH "
OUTPUT_LIMIT = 23_000  # Run Command returns at most 24,000 characters of standard output


def pack(rows: list[Any], start_ns: int, meta: dict[str, Any]) -> str:
    """Samples as columns of microseconds (delta-coded, zlib, base64): about 8 characters a sample."""
    intended = [(r[2] - start_ns) // 1000 for r in rows]
    columns = {
        "worker": [r[0] for r in rows],
        "seq": [r[1] for r in rows],
        "intended": [b - a for a, b in zip([0, *intended[:-1]], intended)],  # noqa: B905 (no strict= on 3.9)
        "wait": [(r[3] - r[2]) // 1000 for r in rows],
        "service": [(r[4] - r[3]) // 1000 for r in rows],
        "warmup": [int(r[6]) for r in rows],
        "errors": {str(i): r[5] for i, r in enumerate(rows) if r[5]},
        "meta": meta,
    }
    return base64.b64encode(zlib.compress(json.dumps(columns, separators=(",", ":")).encode(), 9)).decode()


def unpack(text: str) -> tuple[list[Any], int, dict[str, Any]]:
    """The harness rows again (times in ns from a start of 0), and the instance's metadata."""
    columns = json.loads(zlib.decompress(base64.b64decode(text)))
    rows, intended = [], 0
    for i, worker in enumerate(columns["worker"]):
        intended += columns["intended"][i]
        sent = intended + columns["wait"][i]
        end = sent + columns["service"][i]
        error = columns["errors"].get(str(i))
        rows.append((worker, columns["seq"][i], intended * 1000, sent * 1000, end * 1000, error,
                     bool(columns["warmup"][i])))  # fmt: skip
    return rows, 0, columns["meta"]


def run(spec: dict[str, Any]) -> str:
    """Run the benchmark the spec describes; returns the packed samples."""
    settings = Settings(
        cluster=spec["cluster"], region=spec["region"], database=spec["database"], engine=spec["engine"]
    )
    login = discover(settings)
    facts = EngineFacts.from_json(spec["engine"])
    host, port = spec.get("connect_to") or (spec["host"], spec["port"])  # connect_to: tests only, as curl's

    def connect() -> Any:
        return facts.connect(
            host, int(port), login.username, login.password, spec["database"], connect_timeout=10, timeout=60
        )

    chosen = workloads.WORKLOADS[spec["workload"]]
    if chosen.writes:
        setup = connect()
        try:
            with setup.cursor() as cursor:
                cursor.execute(spec["bench_table"])
        finally:
            setup.close()
    opened: list[Any] = []

    def make_operation(worker: int) -> Any:
        operation, connection = workloads.dbapi_operation(connect, chosen, worker, spec["keys"], spec["seed"])
        opened.append(connection)
        return operation

    try:
        rows, start_ns = harness.run(make_operation, harness.Schedule(**spec["schedule"]))
    finally:
        for connection in opened:
            connection.close()
    meta = {"python": platform.python_version(), facts.driver["module"]: facts.module().__version__,
            "machine": f"{platform.system()} {platform.machine()}", "host": platform.node()}  # fmt: skip
    return pack(rows, start_ns, meta)


def main(argv: list[str]) -> int:
    spec = json.loads(base64.b64decode(argv[0]))
    packed = run(spec)
    if len(packed) + len(MARKER) > OUTPUT_LIMIT:
        sys.stderr.write(
            f"labkit: {len(packed)} characters of samples do not fit Run Command's output; "
            "run fewer requests (a smaller count or a shorter duration)\n"
        )
        return 3
    print(MARKER + packed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
