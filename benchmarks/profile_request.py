"""Where one benchmark request's time goes, on the client: cProfile over many point selects, per driver.

    .venv/bin/python benchmarks/profile_request.py [--requests 20000]

In a fresh temporary LABKIT home (a sandbox, a lab, the shop schema), the harness's operation for the `point`
workload runs `--requests` times direct to the writer, once with PyMySQL (the pure-Python path) and once with
the C API (`_mysql_connector`), under cProfile. Prints the top functions by own time: what the client spends
in Python per request, beside the wait for the server (the socket read).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile

from _lab import fresh_lab


def profile(requests: int) -> None:
    from labkit import sandbox
    from labkit.bench import capi
    from labkit.bench.connect import connect
    from labkit.bench.workloads import WORKLOADS, dbapi_operation

    _, _, secret = fresh_lab("profile")
    writer = next(name for name, info in sandbox.read_state().instances.items() if info["role"] == "writer")
    port = sandbox.read_state().instances[writer]["port"]
    point = WORKLOADS["point"]
    pure, connection = dbapi_operation(lambda: connect("127.0.0.1", port, secret), point, 0, 100)
    c_connection = capi.connect("127.0.0.1", port, secret.username, secret.password, "shop")
    operations = {
        "pure Python (PyMySQL)": pure,
        "C path (_mysql_connector)": capi.operation(c_connection, point, 0, 100),
    }
    for name, operation in operations.items():
        for _ in range(500):
            operation()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            operation()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
        print(f"== {name}: {stats.total_tt / requests * 1e6:.1f} us per request under the profiler")
        stats.print_stats(12)
        print("\n".join(out.getvalue().splitlines()[6:22]))
    connection.close()
    c_connection.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labkit-profile-") as home:
        os.environ["LABKIT_HOME"] = home
        from labkit import sandbox

        try:
            profile(args.requests)
        finally:
            sandbox.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
