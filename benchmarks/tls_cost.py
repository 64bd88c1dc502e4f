"""What TLS costs: the benchmark's point select and a new connection, with TLS (verified, as labkit connects) and
without, side by side in one run.

    .venv/bin/python benchmarks/tls_cost.py [--queries 3000] [--connections 100] [--engine aurora-postgresql]

In a fresh temporary LABKIT home it starts a sandbox, applies a lab and loads the shop schema; then it turns the
lab's TLS requirement off in its cluster parameter group (so a plaintext client may connect at all) and, through
one tunnel to the writer, alternates request by request between a connection with TLS and one without, on the
engine's DB-API driver and on its C path (the benchmark's two drivers). Connection set-up is timed the same way,
alternating. Warm-up requests are dropped. Prints p50 and p99 of each, and TLS / plaintext.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from _lab import fresh_lab

WARM_UP = 300
POINT_SELECT = "SELECT id, name, price_cents FROM products WHERE id = {key}"


def percentile_us(samples_ns: list[int], q: float) -> float:
    from labkit.bench.stats import percentile

    return percentile(samples_ns, q) / 1000


def _require(backend: Any, config: Any, value: str) -> None:
    """Set the lab's TLS parameter and wait until the writer follows it (the reconciler's next pass)."""
    from labkit.access.encryption import plaintext_refused
    from labkit.engines import engine_of

    tls = engine_of(config).tls
    group = f"{config.lab}-{config.learner}-cluster-parameters"
    backend.client("rds").modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=group, Parameters=[{"ParameterName": tls.parameter, "ParameterValue": value}]
    )
    wanted = value == tls.required
    deadline = time.monotonic() + 30
    while plaintext_refused("writer", config=config, backend=backend).iloc[0]["refused"] != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError("the writer did not follow its parameter group")
        time.sleep(0.2)


def measure(queries: int, connections: int, engine_name: str | None) -> dict[str, float]:
    from labkit.access.tls import tunnel_verification
    from labkit.access.tunnel import tunnel
    from labkit.bench.connect import c_path, connect
    from labkit.engines import engine_of
    from labkit.lab.resources.database import DATABASE_NAME

    config, backend, secret = fresh_lab("tls", engine_name)
    engine = engine_of(config)
    _require(backend, config, "0" if engine.tls.required == "1" else "OFF")
    opened = tunnel("writer", config=config, backend=backend).open()
    verify = tunnel_verification(opened)
    modes = {"tls": verify, "plain": None}
    dbapi, capi = engine.dialect.dbapi, c_path(engine)

    def driver(tls: Any) -> Any:
        if tls is None:  # the driver's own default may prefer TLS: say no explicitly
            return dbapi.load().connect(
                **dbapi.arguments(
                    opened.host, opened.port, secret.username, secret.password, DATABASE_NAME, connect_timeout=10,
                    timeout=60,
                ),
                **dbapi.plaintext_arguments(),
            )  # fmt: skip
        return connect(opened.host, opened.port, secret, engine, tls=tls)

    def c_connection(tls: Any) -> Any:
        return capi.connect(opened.host, opened.port, secret.username, secret.password, DATABASE_NAME, 60, tls=tls)

    results: dict[str, float] = {}
    # connection set-up (the driver's path), alternating
    setup: dict[str, list[int]] = {mode: [] for mode in modes}
    for _ in range(connections):
        for mode, tls in modes.items():
            begin = time.perf_counter_ns()
            driver(tls).close()
            setup[mode].append(time.perf_counter_ns() - begin)
    for mode, values in setup.items():
        results[f"connect_{mode}_p50_ms"] = percentile_us(values, 50) / 1000
    # the point select on both drivers, alternating query by query
    for path, make in (("driver", driver), ("capi", c_connection)):
        held = {mode: make(tls) for mode, tls in modes.items()}
        operations: dict[str, Callable[[int], object]] = {}
        for mode, connection in held.items():
            if path == "driver":
                cursor = connection.cursor()

                def run(key: int, cursor: Any = cursor) -> object:
                    cursor.execute(POINT_SELECT.format(key=key))
                    return cursor.fetchall()
            else:
                from labkit.bench.workloads import find_workload

                run_one = capi.operation(connection, find_workload("point"), 0, 100)

                def run(key: int, run_one: Any = run_one) -> object:
                    return run_one()

            operations[mode] = run
        samples: dict[str, list[int]] = {mode: [] for mode in modes}
        for index in range(WARM_UP + queries):
            for mode, run in operations.items():
                begin = time.perf_counter_ns()
                run(1 + index % 100)
                if index >= WARM_UP:
                    samples[mode].append(time.perf_counter_ns() - begin)
        for connection in held.values():
            connection.close()
        for mode, values in samples.items():
            results[f"{path}_{mode}_p50_us"] = percentile_us(values, 50)
            results[f"{path}_{mode}_p99_us"] = percentile_us(values, 99)
    opened.close()
    _require(backend, config, engine.tls.required)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--engine", default=None, help="aurora-mysql (the default) or aurora-postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as home:
        os.environ["LABKIT_HOME"] = home
        from labkit import sandbox

        try:
            result = measure(args.queries, args.connections, args.engine)
        finally:
            sandbox.down()
    print(f"{args.engine or 'default engine'}: {args.queries} point selects per mode and driver, {args.connections} "
          "connections per mode, alternating, through one tunnel to the writer:")  # fmt: skip
    for key, value in result.items():
        print(f"  {key:<24} {value:10.2f}")
    for prefix in ("connect", "driver", "capi"):
        unit = "ms" if prefix == "connect" else "us"
        ratio = result[f"{prefix}_tls_p50_{unit}"] / result[f"{prefix}_plain_p50_{unit}"]
        print(f"  {prefix} TLS / plaintext at p50: {ratio:.2f}x")


if __name__ == "__main__":
    main()
