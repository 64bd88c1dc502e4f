"""Send the harness to the lab's instance with SSM Run Command, run it there, and fetch the samples back.

On AWS the database endpoints are private, so the benchmark's direct path (the database as an application in
the VPC sees it, without the tunnel) runs on the EC2 instance: `AWS-RunShellScript` unpacks the harness,
the workloads, onhost.py and the web app's module into a temporary folder and runs onhost.py with
the instance's Python; the instance role reads the cluster's secret. The samples come back in the command's
standard output, which Run Command cuts at 24,000 characters: hence the sample limit below.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from importlib import resources
from typing import Any

from labkit.access.lookup import cluster_engine
from labkit.access.tunnel import resolve_target, wait_until_online
from labkit.app.userdata import engine_setting
from labkit.aws.backend import Backend
from labkit.aws.patience import TunnelTiming
from labkit.aws.runcommand import run_shell
from labkit.aws.tags import NODE_CLUSTER, resource_name
from labkit.bench import harness
from labkit.bench.onhost import MARKER, unpack
from labkit.bench.workloads import Workload
from labkit.errors import ConfigError, LabkitError
from labkit.lab.resources.database import DATABASE_NAME

MAX_SAMPLES = 2000  # per target, warm-up included: packed, they fit Run Command's output
SHIPPED = {  # file on the instance -> (package, file in labkit)
    "onhost.py": ("labkit.bench", "onhost.py"),
    "harness.py": ("labkit.bench", "harness.py"),
    "workloads.py": ("labkit.bench", "workloads.py"),
    "shop_app.py": ("labkit.app", "server.py"),
}


def check_size(schedule: harness.Schedule) -> None:
    """Refuse, before any call, a run whose samples could not come back through Run Command."""
    if schedule.count is not None and schedule.count + schedule.warmup * schedule.concurrency > MAX_SAMPLES:
        raise ConfigError(
            f"count={schedule.count} with the warm-up is more than the {MAX_SAMPLES} samples the direct path on AWS "
            "can bring back through Run Command's output",
            field="count",
            fix=f"use count <= {MAX_SAMPLES - schedule.warmup * schedule.concurrency}, or path='tunnel'",
        )


def payload() -> str:
    """The shipped files as a gzip'd tar, base64 (deterministic: same labkit, same text)."""
    return packed_files(
        {name: (resources.files(package) / file).read_bytes() for name, (package, file) in SHIPPED.items()}
    )


def packed_files(files: dict[str, bytes]) -> str:
    """Files (path in the archive -> content) as a gzip'd tar, base64, with fixed modes and times: deterministic
    (the gzip header's time too, which tarfile's "w:gz" sets to now)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return base64.b64encode(gzip.compress(buffer.getvalue(), mtime=0)).decode()


def command(spec: dict[str, Any], python: str = "python3") -> str:
    """The shell script Run Command executes on the instance."""
    encoded = base64.b64encode(json.dumps(spec).encode()).decode()
    return "\n".join(
        [
            "set -euo pipefail",
            "work=$(mktemp -d)",
            "trap 'rm -rf \"$work\"' EXIT",
            f"echo '{payload()}' | base64 -d | tar -xz -C \"$work\"",
            f'cd "$work" && {python} onhost.py {encoded}',
        ]
    )


def spec_for(
    target: str, chosen: Workload, schedule: harness.Schedule, seed: int, keys: int, config: Any, backend: Backend
) -> dict[str, Any]:
    far = resolve_target(target, config, backend)
    engine = cluster_engine(config, backend)
    return {
        "cluster": resource_name(config.lab, config.learner, NODE_CLUSTER),
        "region": config.region,
        "database": DATABASE_NAME,
        "engine": engine_setting(engine),  # what onhost.py connects with, as the web app's environment says
        "bench_table": engine.sql.bench_writes,
        "host": far.host,
        "port": far.port,
        "instance_id": far.instance_id,
        "workload": chosen.name,
        "schedule": {k: getattr(schedule, k) for k in ("concurrency", "rate", "duration", "count", "warmup")},
        "seed": seed,
        "keys": keys,
    }


def run_on_instance(
    spec: dict[str, Any], backend: Backend, timing: TunnelTiming | None = None
) -> tuple[list[harness.Row], int, dict[str, Any]]:
    """Run the spec on its instance; returns the harness rows, their start (0) and the instance's metadata."""
    timing = timing or backend.tunnel_timing
    instance_id = spec["instance_id"]
    wait_until_online(backend, instance_id, timing)
    budget = int((spec["schedule"]["duration"] or 60) + 300)
    reply = run_shell(
        backend, instance_id, command({k: v for k, v in spec.items() if k != "instance_id"}),
        comment=f"labkit bench {spec['workload']} on {spec['host']}", timeout=budget, delay=timing.first_delay,
        what="the benchmark", fix="use a shorter duration or a smaller count",
    )  # fmt: skip
    if reply["Status"] != "Success":
        detail = (reply.get("StandardErrorContent") or "").strip().splitlines()[-3:]
        raise LabkitError(
            f"the benchmark on {instance_id} ended {reply['Status']}: {' | '.join(detail) or 'no error output'}",
            field="path",
            fix="check the instance has the web app installed (user data) and labkit.web_app() works, or use path='tunnel'",
        )
    for line in (reply.get("StandardOutputContent") or "").splitlines():
        if line.startswith(MARKER):
            return unpack(line[len(MARKER) :])
    raise LabkitError(
        f"the benchmark on {instance_id} printed no samples",
        field="path",
        fix="run fewer requests: Run Command cuts its output at 24,000 characters",
    )
