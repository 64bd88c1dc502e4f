"""Does labkit's harness measure the database, or itself? A side-by-side check against sysbench.

    .venv/bin/python benchmarks/bench_reference.py [--seconds 4] [--rounds 3]

In a fresh temporary LABKIT home: a sandbox, a lab, and sysbench's table `sbtest1` (10 000 rows) on the
writer. Then, in rounds against the same writer, direct to its MariaDB port, one connection each, the same
point select (`SELECT c FROM sbtest1 WHERE id = ?`); a round is `--seconds` 1-second slices of every arm, the
arms in a fresh random order each slice, so the machine's drift (other processes, the CPU's clock) lands on
every arm alike:
  - sysbench oltp_point_select --threads=1, prepared statements (its default) and text (--db-ps-mode=disable);
  - labkit's closed-loop harness with the C path (libmysqlclient through mysql-connector-python's C API);
  - labkit's closed-loop harness with the pure-Python path (PyMySQL).
Both labkit paths speak the text protocol, as `--db-ps-mode=disable` does.

Prints each round, then per labkit path the median over rounds of p50 / sysbench avg and p95 / sysbench p95
against both sysbench modes (goal: the C path's p50 within 1.10x of sysbench text's average), and the
tunnel's cost (labkit point select p50 through the tunnel / direct).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter

from _lab import fresh_lab

TABLE_SIZE = 10_000
GOAL = 1.10
SYSBENCH_MODES = {"sysbench prepared": [], "sysbench text": ["--db-ps-mode=disable"]}


def sysbench(args: list[str], secret: object, port: int) -> str:
    command = [
        "sysbench", "oltp_point_select", "--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={port}",
        f"--mysql-user={secret.username}", f"--mysql-password={secret.password}", "--mysql-db=shop",
        "--tables=1", f"--table-size={TABLE_SIZE}", "--threads=1", "--histogram=on", *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:  # report sysbench's own message, never the command line (it holds the password)
        raise SystemExit(f"sysbench {args[-1]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def sysbench_slice(output: str) -> tuple[int, float, Counter[float]]:
    """(events, latency sum in ms, histogram) from one sysbench run. Its summary prints milliseconds with two
    decimals (10 us steps); the sum over the events and the histogram (`--histogram`, three decimals) are finer."""
    events = int(re.search(r"total number of events:\s+(\d+)", output).group(1))
    total_ms = float(re.search(r"sum:\s+([\d.]+)", output).group(1))
    buckets = Counter()
    for value, count in re.findall(r"^\s+([\d.]+)\s+\|\**\s+(\d+)\s*$", output, re.M):
        buckets[float(value)] += int(count)
    return events, total_ms, buckets


def sysbench_latency(slices: list[tuple[int, float, Counter[float]]]) -> tuple[float, float]:
    """(avg, p95) in microseconds over a round's sysbench slices."""
    events = sum(e for e, _, _ in slices)
    histogram = sum((b for _, _, b in slices), Counter())
    seen, total, p95 = 0, sum(histogram.values()), float("nan")
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= 0.95 * total:
            p95 = value
            break
    return sum(t for _, t, _ in slices) / events * 1000, p95 * 1000


def labkit_slice(driver: str, secret: object, port: int, seconds: float) -> list[float]:
    """Latencies (us) of labkit's closed-loop harness on the same query, with the C or the pure-Python path."""
    from labkit.bench import capi, harness
    from labkit.bench.connect import connect
    from labkit.bench.runner import to_frame
    from labkit.bench.workloads import Workload, dbapi_operation

    same_query = Workload("point", "SELECT c FROM sbtest1 WHERE id = %s", False, "sysbench's point select")
    opened = []

    def make_operation(worker: int):
        if driver == "capi":
            connection = capi.connect("127.0.0.1", port, secret.username, secret.password, "shop")
            opened.append(connection)
            return capi.operation(connection, same_query, worker, TABLE_SIZE)
        operation, connection = dbapi_operation(lambda: connect("127.0.0.1", port, secret), same_query, worker,
                                                  TABLE_SIZE)  # fmt: skip
        opened.append(connection)
        return operation

    rows, start = harness.run(make_operation, harness.Schedule(concurrency=1, duration=seconds, warmup=200))
    for connection in opened:
        connection.close()
    frame = to_frame(rows, start, target="writer", path="direct", workload="point")
    return frame[~frame["warmup"]]["latency_us"].tolist()


def measure(seconds: int, rounds: int) -> None:
    from labkit import sandbox
    from labkit.access.sql import close_engines
    from labkit.bench import capi, compare, stats

    if not capi.available():
        raise SystemExit("the C path needs mysql-connector-python==9.1.0: run `make setup`")
    config, backend, secret = fresh_lab("reference")
    writer = next(name for name, info in sandbox.read_state().instances.items() if info["role"] == "writer")
    port = sandbox.read_state().instances[writer]["port"]
    sysbench(["prepare"], secret, port)

    arms = [*SYSBENCH_MODES, "labkit C path", "labkit pure Python"]
    results: dict[str, list[tuple[float, float]]] = {arm: [] for arm in arms}
    order = random.Random(17)
    for _ in range(rounds):  # each round: 1-second slices of every arm, in a random order each time
        sysbench_slices: dict[str, list] = {arm: [] for arm in SYSBENCH_MODES}
        latencies: dict[str, list[float]] = {"labkit C path": [], "labkit pure Python": []}
        for _ in range(seconds):
            for arm in order.sample(arms, len(arms)):
                if arm in SYSBENCH_MODES:
                    output = sysbench([*SYSBENCH_MODES[arm], "--time=1", "run"], secret, port)
                    sysbench_slices[arm].append(sysbench_slice(output))
                else:
                    driver = "capi" if arm == "labkit C path" else "pymysql"
                    latencies[arm] += labkit_slice(driver, secret, port, 1.0)
        for arm, slices in sysbench_slices.items():
            results[arm].append(sysbench_latency(slices))
        for arm, values in latencies.items():
            results[arm].append((stats.percentile(values, 50), stats.percentile(values, 95)))
    sysbench(["cleanup"], secret, port)

    paths = compare("writer", paths=("tunnel", "direct"), config=config, backend=backend).summary()
    tunnel_cost = paths.set_index("path")["p50_us"]
    close_engines()

    print(f"{rounds} rounds of {seconds} x 1 s slices per arm (random order), concurrency 1, same writer, "
          "`SELECT c FROM sbtest1 WHERE id = ?`")  # fmt: skip
    print("round  " + "  ".join(f"{arm:>22}" for arm in arms) + "   (p50 or avg / p95, microseconds)")
    for index in range(rounds):
        cells = [f"{results[arm][index][0]:9.1f} / {results[arm][index][1]:8.1f}" for arm in arms]
        print(f"{index + 1:5d}  " + "  ".join(f"{cell:>22}" for cell in cells))
    for arm in ("labkit C path", "labkit pure Python"):
        for reference in SYSBENCH_MODES:
            p50 = [results[arm][i][0] / results[reference][i][0] for i in range(rounds)]
            p95 = [results[arm][i][1] / results[reference][i][1] for i in range(rounds)]
            print(f"{arm} / {reference}: p50/avg {statistics.median(p50):.2f}x "
                  f"(rounds {', '.join(f'{r:.2f}' for r in p50)}), p95/p95 {statistics.median(p95):.2f}x")  # fmt: skip
    c_ratio = statistics.median(results["labkit C path"][i][0] / results["sysbench text"][i][0] for i in range(rounds))
    print(f"goal: the C path's p50 within {GOAL:.2f}x of sysbench text's average: "
          f"{'met' if c_ratio <= GOAL else 'NOT met'} ({c_ratio:.2f}x; C client {capi.version()})")  # fmt: skip
    print(f"tunnel p50 / direct p50 (products point select, interleaved): {tunnel_cost['tunnel']:.1f} / "
          f"{tunnel_cost['direct']:.1f} us = {tunnel_cost['tunnel'] / tunnel_cost['direct']:.2f}x")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=4, help="1-second slices per arm per round")
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
