"""Does labkit's harness measure the database, or itself? A side-by-side check against sysbench.

    .venv/bin/python benchmarks/bench_reference.py [--seconds 5] [--rounds 3]

In a fresh temporary LABKIT home: a sandbox, a lab, and sysbench's table `sbtest1` (10 000 rows) on the
writer. Then, alternating in rounds against the same writer, direct to its MariaDB port, one connection
each: labkit's closed-loop harness running the same point select sysbench runs
(`SELECT c FROM sbtest1 WHERE id = ?`), and `sysbench oltp_point_select --threads=1`. sysbench is run with
`--db-ps-mode=disable`, the text protocol PyMySQL also uses, so the two send the same bytes.

Prints labkit p50 / sysbench avg and labkit p95 / sysbench p95 (goal: within 1.25x, i.e. the harness adds
little of its own), and the tunnel's cost as labkit's point-select p50 through the tunnel / direct.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from _lab import fresh_lab

TABLE_SIZE = 10_000


def sysbench(args: list[str], secret: object, port: int) -> str:
    command = [
        "sysbench", "oltp_point_select", "--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={port}",
        f"--mysql-user={secret.username}", f"--mysql-password={secret.password}", "--mysql-db=shop",
        "--tables=1", f"--table-size={TABLE_SIZE}", "--threads=1", "--db-ps-mode=disable", *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:  # report sysbench's own message, never the command line (it holds the password)
        raise SystemExit(f"sysbench {args[-1]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def sysbench_latency(output: str) -> tuple[float, float]:
    """(avg, p95) in microseconds from sysbench's report (it prints milliseconds with two decimals)."""
    avg = float(re.search(r"avg:\s+([\d.]+)", output).group(1)) * 1000
    p95 = float(re.search(r"95th percentile:\s+([\d.]+)", output).group(1)) * 1000
    return avg, p95


def bare_pymysql_p50(connect: object, count: int) -> float:
    """The same query in a plain timed loop, no harness: what the driver and the server cost alone."""
    import random
    import time

    connection = connect()
    cursor = connection.cursor()
    rng = random.Random(1)
    times = []
    for index in range(count + 500):
        begin = time.perf_counter_ns()
        cursor.execute("SELECT c FROM sbtest1 WHERE id = %s", (rng.randint(1, TABLE_SIZE),))
        cursor.fetchall()
        if index >= 500:
            times.append(time.perf_counter_ns() - begin)
    connection.close()
    return statistics.median(times) / 1000


def measure(seconds: float, rounds: int) -> None:
    from labkit import sandbox
    from labkit.access.sql import close_engines
    from labkit.bench import benchmark, harness, stats
    from labkit.bench.runner import _connect, to_frame
    from labkit.bench.workloads import Workload, pymysql_operation

    config, backend, secret = fresh_lab("reference")
    writer = next(name for name, info in sandbox.read_state().instances.items() if info["role"] == "writer")
    port = sandbox.read_state().instances[writer]["port"]
    sysbench(["prepare"], secret, port)

    same_query = Workload("point", "SELECT c FROM sbtest1 WHERE id = %s", False, "sysbench's point select")
    ratios_avg, ratios_p95, rows = [], [], []
    for round_number in range(1, rounds + 1):
        samples, start = harness.run(
            lambda worker: pymysql_operation(
                lambda: _connect("127.0.0.1", port, secret), same_query, worker, TABLE_SIZE
            )[0],
            harness.Schedule(concurrency=1, duration=seconds, warmup=500),
        )
        frame = to_frame(samples, start, target="writer", path="direct", workload="point")
        latency = frame[~frame["warmup"]]["latency_us"]
        labkit_p50, labkit_p95 = stats.percentile(latency, 50), stats.percentile(latency, 95)
        sb_avg, sb_p95 = sysbench_latency(sysbench([f"--time={seconds:g}", "run"], secret, port))
        bare_p50 = bare_pymysql_p50(lambda: _connect("127.0.0.1", port, secret), len(latency))
        ratios_avg.append(labkit_p50 / sb_avg)
        ratios_p95.append(labkit_p95 / sb_p95)
        rows.append((round_number, len(latency), labkit_p50, labkit_p95, sb_avg, sb_p95, bare_p50))
    sysbench(["cleanup"], secret, port)

    paths = {}
    for path in ("direct", "tunnel"):
        result = benchmark("writer", path=path, duration=seconds, warmup=200, config=config, backend=backend)
        paths[path] = result.summary()["p50_us"][0]
    close_engines()

    noop, start = harness.run(lambda worker: lambda: None, harness.Schedule(count=200_000, warmup=1000))
    overhead = stats.percentile(to_frame(noop, start, target="-", path="-", workload="noop")["latency_us"], 50)

    print(
        "round  labkit samples  labkit p50  labkit p95  sysbench avg  sysbench p95  bare PyMySQL p50   (microseconds)"
    )
    for number, count, p50, p95, avg, sb95, bare in rows:
        print(f"{number:5d}  {count:14d}  {p50:10.1f}  {p95:10.1f}  {avg:12.1f}  {sb95:12.1f}  {bare:16.1f}")
    print(f"the harness's own cost per request (a no-op operation): p50 {overhead:.2f} us")
    bare_ratio = statistics.median(r[2] / r[6] for r in rows)
    print(f"labkit p50 / a bare PyMySQL loop's p50 (same query, no harness): {bare_ratio:.2f}x")
    print(
        f"labkit p50 / sysbench avg: {statistics.median(ratios_avg):.2f}x  (rounds: {', '.join(f'{r:.2f}' for r in ratios_avg)})"
    )
    print(
        f"labkit p95 / sysbench p95: {statistics.median(ratios_p95):.2f}x  (rounds: {', '.join(f'{r:.2f}' for r in ratios_p95)})"
    )
    print(
        f"goal within 1.25x: {'met' if max(statistics.median(ratios_avg), statistics.median(ratios_p95)) <= 1.25 else 'NOT met'}"
    )
    print(f"tunnel p50 / direct p50 (products point select): {paths['tunnel']:.1f} / {paths['direct']:.1f} us "
          f"= {paths['tunnel'] / paths['direct']:.2f}x")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("sysbench") is None:
        print("sysbench is not installed: run `make setup` (it installs it with apt)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as home:
        os.environ["LABKIT_HOME"] = home
        from labkit import sandbox

        try:
            measure(args.seconds, args.rounds)
        finally:
            sandbox.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
