"""What one sandbox tunnel costs: memory of its session plugin process and seconds until its port opens.

    .venv/bin/python benchmarks/tunnel_cost.py [--runs 5]

In a fresh temporary LABKIT home it starts a sandbox and applies a lab. Then, `--runs` times and one tunnel at
a time, it does what a tunnel does (ssm.start_session, then the sandbox's session plugin run as the AWS CLI
runs session-manager-plugin) and measures the plugin process:
  - seconds from spawning it to its `Port N opened` line, and to the first query answered through it, with the
    plugin's CPU seconds at those moments (wall time grows on a busy machine, CPU time much less);
  - its memory once it has forwarded a connection (the rules engine loaded, as in use): RSS and PSS in MB from
    /proc/PID/smaps_rollup (PSS splits pages shared with other processes, e.g. the daemon's Python).
Prints each run and the medians. The guard process a tunnel also runs (access/tunnel/guard.py) is measured too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql
from _lab import fresh_lab

RESPONSE_ENV = "AWS_SSM_START_SESSION_RESPONSE"
GUARD = Path(__file__).resolve().parents[1] / "labkit" / "access" / "tunnel" / "guard.py"


def memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS of a process in MB (smaps_rollup; RSS only from status where that file is missing)."""
    values: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                values[name.lower()] = int(rest.split()[0]) / 1024
    except OSError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                values["rss"] = int(line.split()[1]) / 1024
    return values


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: unlike wall time, not inflated by a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plugin_pid(guard_pid: int) -> int:
    return int(Path(f"/proc/{guard_pid}/task/{guard_pid}/children").read_text().split()[0])


def wait_for_line(process: subprocess.Popen[bytes], marker: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode(errors="replace")
        if not line:
            raise RuntimeError(
                f"the plugin exited before {marker!r}: {process.stderr.read() if process.stderr else ''}"
            )
        if marker in line:
            return
    raise RuntimeError(f"no {marker!r} within {timeout} s")


def one_tunnel(config: Any, backend: Any, secret: Any) -> dict[str, float]:
    """Open one tunnel the way labkit does, measure its plugin, close it."""
    from labkit.access.tunnel.target import resolve_target

    target = resolve_target("writer", config, backend, None)
    ssm = backend.client("ssm")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    response = ssm.start_session(
        Target=target.instance_id, DocumentName=target.document, Parameters=target.parameters(port)
    )
    session = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    request = {"Target": target.instance_id, "DocumentName": target.document, "Parameters": target.parameters(port)}
    command = [
        *backend.session_plugin(), RESPONSE_ENV, backend.region, "StartSession", "",
        json.dumps(request), ssm.meta.endpoint_url,
    ]  # fmt: skip
    guard = [
        sys.executable, str(GUARD), "--owner", str(os.getpid()), "--backend", backend.name, "--region",
        backend.region, "--session-id", session["SessionId"], "--endpoint-url", backend.endpoint_url(), "--", *command,
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(
        guard, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, RESPONSE_ENV: json.dumps(session)}
    )
    try:
        wait_for_line(process, "opened for sessionId")
        to_port = time.perf_counter() - started
        plugin = plugin_pid(process.pid)
        cpu_to_port = cpu_seconds(plugin)
        connection = pymysql.connect(
            host="127.0.0.1", port=port, user=secret.username, password=secret.password, connect_timeout=30
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        to_query = time.perf_counter() - started
        cpu_to_query = cpu_seconds(plugin)
        connection.close()
        time.sleep(1.0)  # let the connection's threads end: measure the plugin at rest, ready for the next one
        plugin_memory = memory_mb(plugin)
        guard_memory = memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(10)
        ssm.terminate_session(SessionId=session["SessionId"])
    return {
        "port_s": to_port,
        "query_s": to_query,
        "cpu_port_s": cpu_to_port,
        "cpu_query_s": cpu_to_query,
        "rss_mb": plugin_memory.get("rss", 0.0),
        "pss_mb": plugin_memory.get("pss", 0.0),
        "guard_pss_mb": guard_memory.get("pss", guard_memory.get("rss", 0.0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labkit-tunnel-cost-") as home:
        os.environ["LABKIT_HOME"] = home
        from labkit import sandbox

        try:
            config, backend, secret = fresh_lab("cost")
            runs = []
            for index in range(args.runs):
                run = one_tunnel(config, backend, secret)
                runs.append(run)
                print(
                    f"run {index + 1}: port opened {run['port_s']:.2f} s ({run['cpu_port_s']:.2f} s CPU), "
                    f"first query {run['query_s']:.2f} s ({run['cpu_query_s']:.2f} s CPU), "
                    f"plugin RSS {run['rss_mb']:.1f} MB, PSS {run['pss_mb']:.1f} MB, guard PSS {run['guard_pss_mb']:.1f} MB"
                )
            print(f"median of {len(runs)} tunnels (one session plugin process each):")
            for key, label, unit in (
                ("port_s", "seconds to 'Port N opened'", "s"),
                ("query_s", "seconds to the first query answered", "s"),
                ("cpu_port_s", "plugin CPU seconds to 'Port N opened'", "s"),
                ("cpu_query_s", "plugin CPU seconds to the first query", "s"),
                ("rss_mb", "plugin RSS", "MB"),
                ("pss_mb", "plugin PSS", "MB"),
                ("guard_pss_mb", "guard PSS", "MB"),
            ):
                print(f"  {label:38s} {statistics.median(r[key] for r in runs):7.2f} {unit}")
        finally:
            sandbox.down(quiet=True)


if __name__ == "__main__":
    main()
