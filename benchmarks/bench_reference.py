"""Does labkit's harness measure the database, or itself? A side-by-side check against the engine's own C
benchmark: sysbench for Aurora MySQL, pgbench for Aurora PostgreSQL.

    .venv/bin/python benchmarks/bench_reference.py [--seconds 4] [--rounds 3] [--engine aurora-postgresql]

In a fresh temporary LABKIT home: a sandbox, a lab of the engine, and the reference's own table on the writer
(sysbench's `sbtest1`, 10 000 rows; pgbench's `pgbench_accounts`, scale 1, 100 000 rows). Then, in rounds
against the same writer, direct to its server's port, one connection each, the same point select (sysbench's
`SELECT c FROM sbtest1 WHERE id = ?`, pgbench -S's `SELECT abalance FROM pgbench_accounts WHERE aid = ?`); a
round is `--seconds` 1-second slices of every arm, the arms in a fresh random order each slice, so the
machine's drift (other processes, the CPU's clock) lands on every arm alike:
  - the reference, threads/clients 1, prepared statements and the text (simple) protocol: sysbench's default and
    --db-ps-mode=disable; pgbench -S -M prepared and -M simple (its default);
  - labkit's closed-loop harness with the engine's C path (libmysqlclient through mysql-connector-python's C
    API; libpq through psycopg's compiled wrapper);
  - labkit's closed-loop harness with the engine's pure-Python DB-API driver (PyMySQL; psycopg's cursor).
Both labkit paths speak the text (simple) protocol, as the reference's second mode does.

Prints each round, then per labkit path the median over rounds of its p50 against the reference's centre (the
average for sysbench, whose histogram is coarse; the p50 for pgbench, whose per-transaction log is exact) and
of its p95 against the reference's p95, against both reference modes (goal: the C path's p50 within 1.10x of
the text mode's centre), and the tunnel's cost (labkit point select p50 through the tunnel / direct).
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
from pathlib import Path
from typing import ClassVar

from _lab import fresh_lab

GOAL = 1.10
Slice = Counter[float]  # latency in microseconds -> how many requests took it


class Sysbench:
    """sysbench oltp_point_select against the writer (MySQL's protocol)."""

    program = "sysbench"
    modes: ClassVar[dict[str, list[str]]] = {"sysbench prepared": [], "sysbench text": ["--db-ps-mode=disable"]}
    text_mode = "sysbench text"
    centre = "avg"
    keys = 10_000
    query = "SELECT c FROM sbtest1 WHERE id = %s"

    def __init__(self, secret: object, port: int, home: Path) -> None:
        from labkit.home import private_dir
        from labkit.sandbox.tls import write_sysbench_files  # the lab requires TLS: sysbench reads these files

        self.secret, self.port = secret, port
        self.folder = write_sysbench_files(home / "data", private_dir(home / "sysbench"))

    def _run(self, args: list[str]) -> str:
        command = [
            "sysbench", "oltp_point_select", "--db-driver=mysql", "--mysql-ssl=on", "--mysql-host=127.0.0.1", f"--mysql-port={self.port}",
            f"--mysql-user={self.secret.username}", f"--mysql-password={self.secret.password}", "--mysql-db=shop",
            "--tables=1", f"--table-size={self.keys}", "--threads=1", "--histogram=on", *args,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if done.returncode != 0:  # report sysbench's own message, never the command line (it holds the password)
            raise SystemExit(f"sysbench {args[-1]} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def prepare(self) -> None:
        self._run(["prepare"])

    def cleanup(self) -> None:
        self._run(["cleanup"])

    def slice(self, mode: str) -> tuple[Slice, float]:
        """(histogram in us, the latencies' sum in us) of one 1-second run. Its summary prints milliseconds with two
        decimals (10 us steps); the sum over the events and the histogram (three decimals) are finer."""
        output = self._run([*self.modes[mode], "--time=1", "run"])
        total_ms = float(re.search(r"sum:\s+([\d.]+)", output).group(1))
        buckets: Slice = Counter()
        for value, count in re.findall(r"^\s+([\d.]+)\s+\|\**\s+(\d+)\s*$", output, re.M):
            buckets[float(value) * 1000] += int(count)
        return buckets, total_ms * 1000


class Pgbench:
    """pgbench -S (its select-only script) against the writer; each transaction's latency from its log."""

    program = "pgbench"
    modes: ClassVar[dict[str, list[str]]] = {"pgbench prepared": ["-M", "prepared"], "pgbench simple": ["-M", "simple"]}
    text_mode = "pgbench simple"
    centre = "p50"
    keys = 100_000  # scale 1
    query = "SELECT abalance FROM pgbench_accounts WHERE aid = %s"

    def __init__(self, secret: object, port: int, home: Path) -> None:
        from labkit.engines import ENGINES

        client = ENGINES["aurora-postgresql"].client
        self.service = home / f"bench-{port}{client.credentials_suffix}"  # the service file labkit tunnel writes
        descriptor = os.open(self.service, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(client.credentials.format(host="127.0.0.1", port=port, user=secret.username,
                                                   password=secret.password, database="shop"))  # fmt: skip
        self.logs = home / "pgbench-logs"
        self.logs.mkdir(exist_ok=True)

    def _run(self, args: list[str]) -> None:
        env = dict(os.environ, PGSERVICEFILE=str(self.service))
        done = subprocess.run(["pgbench", *args, "service=labkit"], capture_output=True, text=True, env=env,
                              cwd=self.logs)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"pgbench {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")

    def prepare(self) -> None:
        self._run(["-i", "-q", "-s", "1"])

    def cleanup(self) -> None:
        self._run(["-i", "-I", "d"])  # drops pgbench's tables

    def slice(self, mode: str) -> tuple[Slice, float]:
        """(latencies in us, their sum) of one 1-second run, from its per-transaction log (`-l`: client, transaction,
        latency in us, ...)."""
        for old in self.logs.glob("slice*"):
            old.unlink()
        self._run(["-S", "-n", "-c", "1", "-j", "1", "-T", "1", *self.modes[mode], "-l", "--log-prefix=slice"])
        latencies = [
            float(line.split()[2]) for path in self.logs.glob("slice*") for line in path.read_text().splitlines()
        ]
        return Counter(latencies), sum(latencies)


REFERENCES = {"aurora-mysql": Sysbench, "aurora-postgresql": Pgbench}


def percentile(histogram: Slice, q: float) -> float:
    seen, total = 0, sum(histogram.values())
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= q / 100 * total:
            return value
    return float("nan")


def reference_latency(slices: list[tuple[Slice, float]], centre: str) -> tuple[float, float]:
    """(centre, p95) in microseconds over a round's reference slices: the average, or the p50."""
    histogram = sum((h for h, _ in slices), Counter())
    events = sum(histogram.values())
    middle = sum(total for _, total in slices) / events if centre == "avg" else percentile(histogram, 50)
    return middle, percentile(histogram, 95)


def labkit_slice(
    engine: object, path: str, secret: object, port: int, seconds: float, query: str, keys: int
) -> list[float]:
    """Latencies (us) of labkit's closed-loop harness on the reference's query, with the C or the pure-Python path."""
    from labkit.bench import harness
    from labkit.bench.connect import c_path, connect
    from labkit.bench.runner import to_frame
    from labkit.bench.workloads import Workload, dbapi_operation

    same_query = Workload("point", query, False, "the reference's point select")
    fast = c_path(engine)
    opened = []

    def make_operation(worker: int):
        if path == "capi":
            connection = fast.connect("127.0.0.1", port, secret.username, secret.password, "shop")
            opened.append(connection)
            return fast.operation(connection, same_query, worker, keys)
        operation, connection = dbapi_operation(lambda: connect("127.0.0.1", port, secret, engine), same_query,
                                                worker, keys)  # fmt: skip
        opened.append(connection)
        return operation

    rows, start = harness.run(make_operation, harness.Schedule(concurrency=1, duration=seconds, warmup=200))
    for connection in opened:
        connection.close()
    frame = to_frame(rows, start, target="writer", path="direct", workload="point")
    return frame[~frame["warmup"]]["latency_us"].tolist()


def measure(engine_name: str, seconds: int, rounds: int, home: Path) -> None:
    from labkit import sandbox
    from labkit.access.sql import close_engines
    from labkit.bench import compare, stats
    from labkit.bench.connect import c_path
    from labkit.engines import engine_of

    config, backend, secret = fresh_lab("reference", engine_name)
    engine = engine_of(config)
    fast = c_path(engine)
    if not fast.available():
        raise SystemExit(f"the {engine.display_name} C path is not installed: run `make setup`")
    writer = next(name for name, info in sandbox.read_state().instances.items() if info["role"] == "writer")
    port = sandbox.read_state().instances[writer]["port"]
    reference = REFERENCES[engine.name](secret, port, home)
    reference.prepare()

    labkit_arms = {"labkit C path": "capi", "labkit pure Python": "dbapi"}
    arms = [*reference.modes, *labkit_arms]
    results: dict[str, list[tuple[float, float]]] = {arm: [] for arm in arms}
    order = random.Random(17)
    for _ in range(rounds):  # each round: 1-second slices of every arm, in a random order each time
        reference_slices: dict[str, list] = {arm: [] for arm in reference.modes}
        latencies: dict[str, list[float]] = {arm: [] for arm in labkit_arms}
        for _ in range(seconds):
            for arm in order.sample(arms, len(arms)):
                if arm in reference.modes:
                    reference_slices[arm].append(reference.slice(arm))
                else:
                    latencies[arm] += labkit_slice(engine, labkit_arms[arm], secret, port, 1.0, reference.query,
                                                   reference.keys)  # fmt: skip
        for arm, slices in reference_slices.items():
            results[arm].append(reference_latency(slices, reference.centre))
        for arm, values in latencies.items():
            results[arm].append((stats.percentile(values, 50), stats.percentile(values, 95)))
    reference.cleanup()

    paths = compare("writer", paths=("tunnel", "direct"), config=config, backend=backend).summary()
    tunnel_cost = paths.set_index("path")["p50_us"]
    close_engines()

    print(f"{engine.display_name}: {rounds} rounds of {seconds} x 1 s slices per arm (random order), concurrency 1, "
          f"same writer, `{reference.query.replace('%s', '?')}`")  # fmt: skip
    print("round  " + "  ".join(f"{arm:>22}" for arm in arms) + f"   ({reference.centre} of the reference, p50 of "
          "labkit / p95, microseconds)")  # fmt: skip
    for index in range(rounds):
        cells = [f"{results[arm][index][0]:9.1f} / {results[arm][index][1]:8.1f}" for arm in arms]
        print(f"{index + 1:5d}  " + "  ".join(f"{cell:>22}" for cell in cells))
    for arm in labkit_arms:
        for mode in reference.modes:
            p50 = [results[arm][i][0] / results[mode][i][0] for i in range(rounds)]
            p95 = [results[arm][i][1] / results[mode][i][1] for i in range(rounds)]
            print(f"{arm} / {mode}: p50/{reference.centre} {statistics.median(p50):.2f}x "
                  f"(rounds {', '.join(f'{r:.2f}' for r in p50)}), p95/p95 {statistics.median(p95):.2f}x")  # fmt: skip
    text = reference.text_mode
    c_ratio = statistics.median(results["labkit C path"][i][0] / results[text][i][0] for i in range(rounds))
    print(f"goal: the C path's p50 within {GOAL:.2f}x of {text}'s {reference.centre}: "
          f"{'met' if c_ratio <= GOAL else 'NOT met'} ({c_ratio:.2f}x; C client {fast.version()})")  # fmt: skip
    print(f"tunnel p50 / direct p50 (products point select, interleaved): {tunnel_cost['tunnel']:.1f} / "
          f"{tunnel_cost['direct']:.1f} us = {tunnel_cost['tunnel'] / tunnel_cost['direct']:.2f}x")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=4, help="1-second slices per arm per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine", default="aurora-mysql", choices=sorted(REFERENCES))
    args = parser.parse_args()
    program = REFERENCES[args.engine].program
    if shutil.which(program) is None:
        print(f"{program} is not installed: run `make setup` (it installs it with apt)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as home:
        os.environ["LABKIT_HOME"] = home
        from labkit import sandbox

        try:
            measure(args.engine, args.seconds, args.rounds, Path(home))
        finally:
            sandbox.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
