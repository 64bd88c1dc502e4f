"""The failover lab on AWS: the strategies run on the lab's EC2 instance, the failure is made from here.

Why on the instance, not through tunnels: what the lab measures is how each strategy meets the endpoints' DNS
during a failover (the cluster endpoint's 5 s TTL, the old writer's address a cached answer keeps, the instance
endpoints topology-aware clients use). Only the VPC sees that DNS. Through a Session Manager port forward the
agent on the instance resolves the remote host (when, per session or per connection, we found no AWS source for),
and a strategy on this side would resolve the tunnel's loopback address, never the endpoint: its cached address,
or its choice of an instance endpoint, would mean nothing. So, as the benchmark's direct path does (labkit.bench.remote), SSM Run
Command (`AWS-RunShellScript`) ships the very strategy modules the notebook shows, with their harness, as a small
`labkit` tree (onhost.py says what runs there). This side waits until the agent has started them, makes the
failure through the RDS API at the agreed moment (FailoverDBCluster; RebootDBInstance with ForceFailover for the
crash; RebootDBInstance for the reboot), then reads the samples back from the command's standard output, which
Run Command cuts at 24,000 characters: hence check_size().

The wrapper strategy does not run there: aws-advanced-python-wrapper needs Python 3.10, the instance has 3.9.
"""

from __future__ import annotations

import ast
import base64
import json
import time
from importlib import resources
from typing import Any

from botocore.exceptions import ClientError

from labkit.access.lookup import running_instance
from labkit.access.tunnel import wait_until_online
from labkit.app.userdata import CA_FILE
from labkit.aws.backend import Backend
from labkit.aws.runcommand import send_shell, wait_shell
from labkit.bench.remote import packed_files
from labkit.errors import ConfigError, LabkitError
from labkit.failover_lab.app import Cluster
from labkit.failover_lab.failures import make_failure
from labkit.failover_lab.onhost import MARKER, OUTPUT_LIMIT, START_MARGIN, unpack

START_SECONDS = 20.0  # before the baseline: Run Command's delivery, the instance's Python, SQLAlchemy's first install
FINISH_SECONDS = 120.0  # after the run: the recount on the writer, and Run Command reporting back
CHARS_PER_SAMPLE = (
    9.0  # packed, at worst (jittered times, a third failed, every kind): tests/unit/test_failover_remote.py
)
CHARS_FIXED = 1_500  # the error texts, names and metadata
NO_WRAPPER = (
    "on AWS the strategies run on the lab's instance, whose Python 3.9 cannot install aws-advanced-python-wrapper "
    "(it needs Python 3.10 or newer)"
)
SQLALCHEMY = "SQLAlchemy>=2.0,<2.1"  # the pool strategy's; 2.0 still supports the instance's Python 3.9
SITE = "/opt/labkit/failover-site"  # where the command installs it, once
ON_HOST = ("app", "loops", "onhost", "naive", "backoff", "pool", "topology")  # of labkit.failover_lab
SHIPPED = {  # file in the shipped tree -> (package, file in labkit)
    "labkit/errors.py": ("labkit", "errors.py"),
    "labkit/app/server.py": ("labkit.app", "server.py"),
    **{f"labkit/failover_lab/{name}.py": ("labkit.failover_lab", f"{name}.py") for name in ON_HOST},
}
PACKAGES = ("labkit", "labkit/app", "labkit/failover_lab")  # shipped with an __init__ of their own: no imports


def check_size(strategies: tuple[str, ...], baseline: float, after: float, interval: float) -> None:
    """Refuse, before any call, a run whose samples could not come back through Run Command's output."""
    if "wrapper" in strategies:
        raise ConfigError(NO_WRAPPER, field="strategies", fix="leave out the wrapper strategy on AWS")
    seconds = START_MARGIN + baseline + after
    samples = len(strategies) * seconds / interval
    if samples * CHARS_PER_SAMPLE + CHARS_FIXED > OUTPUT_LIMIT:
        longest = (OUTPUT_LIMIT - CHARS_FIXED) / CHARS_PER_SAMPLE * interval / len(strategies) - START_MARGIN - baseline
        raise ConfigError(
            f"after={after:g} s at interval={interval:g} s: {len(strategies)} strategies would write about "
            f"{samples:.0f} times, more than Run Command's 24,000 characters of output can bring back from the instance",
            field="after",
            fix=f"use after <= {int(longest)} at this interval, a longer interval, or fewer strategies",
        )


def payload() -> str:
    """The shipped tree as a gzip'd tar, base64 (deterministic: same labkit, same text); each module as the same
    program without its comments (ast.unparse, as the user data ships the web app) to keep the command short."""
    files = {f"labkit/engines/{entry.name}": entry.read_bytes()
             for entry in sorted(resources.files("labkit.engines").iterdir(), key=lambda e: e.name)
             if entry.name.endswith(".py")}  # fmt: skip
    files.update({name: (resources.files(package) / file).read_bytes() for name, (package, file) in SHIPPED.items()})
    files.update({f"{package}/__init__.py": b'"""Shipped by labkit.failover_lab.remote: no imports."""\n'
                  for package in PACKAGES})  # fmt: skip
    return packed_files({name: (ast.unparse(ast.parse(data)) + "\n").encode() for name, data in sorted(files.items())})


def command(spec: dict[str, Any], python: str = "python3") -> str:
    """The shell script Run Command executes on the instance."""
    encoded = base64.b64encode(json.dumps(spec).encode()).decode()
    lines = ["set -euo pipefail", "work=$(mktemp -d)", "trap 'rm -rf \"$work\"' EXIT",
             f"echo '{payload()}' | base64 -d | tar -xz -C \"$work\""]  # fmt: skip
    if "pool" in spec["order"]:  # the pool strategy is SQLAlchemy's pool: installed once, beside the system's
        lines += [
            f"if ! {python} -c 'import sqlalchemy' 2>/dev/null; then",
            f"  [ -d {SITE}/sqlalchemy ] || {python} -m pip install --quiet --target {SITE} '{SQLALCHEMY}'",
            f'  export PYTHONPATH="{SITE}"',
            "fi",
        ]
    lines.append(f'cd "$work" && {python} -m labkit.failover_lab.onhost {encoded}')
    return "\n".join(lines)


def run_on_instance(failure: str, spec: dict[str, Any], cluster: Cluster, config: Any,
                    backend: Backend) -> tuple[str, float, dict[str, Any]]:  # fmt: skip
    """One failure's run with the strategies on the lab's instance; returns how the failure was made, its second
    on the instance's clock, and what the instance sent back (onhost.unpack)."""
    timing = backend.tunnel_timing
    instance_id = running_instance(backend, config=config)
    wait_until_online(backend, instance_id, timing)
    fail_at = time.time() + START_SECONDS + spec["baseline"]
    spec = {**spec, "cluster": vars(cluster), "fail_at": fail_at, "ca_file": CA_FILE}
    budget = START_SECONDS + spec["baseline"] + spec["after"] + FINISH_SECONDS
    command_id = send_shell(backend, instance_id, command(spec), comment=f"labkit failover lab: {failure}",
                            timeout=budget)  # fmt: skip
    _started(backend, instance_id, command_id, fail_at)
    time.sleep(max(0.0, fail_at - time.time()))
    called = time.time()
    how = make_failure(failure, cluster, spec["writer_before"], backend)
    reply = wait_shell(
        backend, instance_id, command_id, timeout=budget, delay=timing.first_delay, what="the failover lab",
        fix="run it again; if it keeps failing, check labkit.web_app() answers (the instance's Python and driver)",
    )  # fmt: skip
    if reply["Status"] != "Success":
        detail = (reply.get("StandardErrorContent") or "").strip().splitlines()[-3:]
        raise LabkitError(
            f"the failover lab on {instance_id} ended {reply['Status']}: {' | '.join(detail) or 'no error output'} "
            f"(the failure was made: {how})",
            field="instance",
            fix="wait until labkit.endpoints() shows the cluster whole again, then run it again",
        )
    for line in (reply.get("StandardOutputContent") or "").splitlines():
        if line.startswith(MARKER):
            result = unpack(line[len(MARKER) :])
            return how, called - result["epoch"], result
    raise LabkitError(f"the failover lab on {instance_id} printed no samples", field="after",
                      fix="keep writing for a shorter time after the failure")  # fmt: skip


def _started(backend: Backend, instance_id: str, command_id: str, fail_at: float) -> None:
    """Return once the agent runs the command; refuse, before any failure, if it does not by `fail_at`."""
    ssm = backend.client("ssm")
    while time.time() < fail_at - 1.0:
        try:
            status = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)["Status"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvocationDoesNotExist":
                raise
            status = "Pending"  # right after sending, AWS has not registered it yet
        if status not in ("Pending", "Delayed", "InProgress"):
            raise LabkitError(f"the failover lab's command on {instance_id} ended {status} before the failure",
                              field="instance", fix="check labkit.web_app() answers, then run it again")  # fmt: skip
        if status == "InProgress":
            return
        time.sleep(1.0)
    raise LabkitError(
        f"the agent on {instance_id} did not start the failover lab within {START_SECONDS:.0f} s; no failure was made "
        "(if it starts later, it writes for a while and ends by itself)",
        field="instance", fix="check the instance is online in Session Manager (labkit.readiness()), then run it again",
    )  # fmt: skip
