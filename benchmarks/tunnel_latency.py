"""What the sandbox's tunnel costs: a point select through it against the same select straight to the server.

    .venv/bin/python benchmarks/tunnel_latency.py [--queries 5000] [--runs 3] [--engine aurora-postgresql]

In a fresh temporary LABKIT home it starts a sandbox, applies a lab and loads the shop schema. Then it times
`tunnel("writer")` to the first query, and runs the point select `SELECT ... FROM products WHERE id = ?` over
two open connections to the same writer, one through the tunnel and one direct, alternating query by query
so both see the same machine at the same moment. Warm-up queries are dropped. Prints p50 and p99 of each
path and the ratio tunnel / direct (goal: under 2x at p50).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from _lab import fresh_lab

WARM_UP = 500


def percentile_us(samples_ns: list[int], q: float) -> float:
    from labkit.bench.stats import percentile

    return percentile(samples_ns, q) / 1000


def measure(queries: int, engine_name: str | None) -> dict[str, float]:
    from labkit import sandbox
    from labkit.access.tunnel import tunnel
    from labkit.bench.connect import connect
    from labkit.engines import engine_of

    config, backend, secret = fresh_lab("tunnel", engine_name)
    engine = engine_of(config)  # its DB-API driver on both paths

    started = time.perf_counter()
    opened = tunnel("writer", config=config, backend=backend).open()
    through = connect(opened.host, opened.port, secret, engine)
    with through.cursor() as cursor:
        cursor.execute("SELECT 1")
    to_first_query = time.perf_counter() - started
    writer = next(name for name, info in sandbox.read_state().instances.items() if info["role"] == "writer")
    direct = connect("127.0.0.1", sandbox.read_state().instances[writer]["port"], secret, engine)
    paths = {"direct": direct.cursor(), "tunnel": through.cursor()}
    samples: dict[str, list[int]] = {name: [] for name in paths}
    for index in range(WARM_UP + queries):
        key = 1 + index % 100
        for name, cursor in paths.items():
            begin = time.perf_counter_ns()
            cursor.execute("SELECT id, name, price_cents FROM products WHERE id = %s", (key,))
            cursor.fetchall()
            if index >= WARM_UP:
                samples[name].append(time.perf_counter_ns() - begin)
    through.close()
    direct.close()
    opened.close()
    return {
        "tunnel_to_first_query_s": to_first_query,
        **{f"{name}_p50_us": percentile_us(values, 50) for name, values in samples.items()},
        **{f"{name}_p99_us": percentile_us(values, 99) for name, values in samples.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", default=None, help="aurora-mysql (the default) or aurora-postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as home:
        os.environ["LABKIT_HOME"] = home
        from labkit import sandbox

        try:
            runs = [measure(args.queries, args.engine) for _ in range(args.runs)]
        finally:
            sandbox.down()
    print(f"{args.engine or 'default engine'}: {args.runs} runs x {args.queries} point selects per path, alternating "
          "(median of runs):")  # fmt: skip
    summary = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    for key, value in summary.items():
        print(f"  {key:<26} {value:10.2f}")
    ratio = [run["tunnel_p50_us"] / run["direct_p50_us"] for run in runs]
    ratio99 = [run["tunnel_p99_us"] / run["direct_p99_us"] for run in runs]
    print(
        f"  tunnel / direct at p50     {statistics.median(ratio):10.2f}x  (runs: {', '.join(f'{r:.2f}' for r in ratio)})"
    )
    print(f"  tunnel / direct at p99     {statistics.median(ratio99):10.2f}x")
    print(f"  goal under 2x at p50: {'met' if statistics.median(ratio) < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
