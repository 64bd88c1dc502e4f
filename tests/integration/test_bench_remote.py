"""The benchmark's direct path on AWS: the harness shipped to the instance with Run Command, samples back.

No AWS here: a stand-in SSM agent (botocore event handlers on the SSM client) executes the AWS-RunShellScript
command labkit sends, with bash, on this machine, against a real sandbox lab: the shipped files unpack and run,
read the cluster's secret and hit the writer's MariaDB. The one liberty it takes is name resolution: this
machine cannot resolve the private endpoint name, so the agent adds the sandbox's answer to the spec (as the
VPC's DNS would answer the instance).
"""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from support.aws_like import AwsLikeBackend
from support.sandbox_lab import sandbox_lab

from labkit.access.lookup import running_instance
from labkit.access.schema import create_schema
from labkit.access.sql import close_engines
from labkit.access.tunnel import close_all
from labkit.bench import benchmark, compare, failover, harness, remote, replica_lag, tunnel_cost
from labkit.bench.onhost import pack, unpack
from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.signing import home_credentials


def test_pack_and_unpack_keep_every_sample_to_the_microsecond():
    rows = [
        (0, 0, 5_000_000, 5_000_000, 5_250_000, None, True),
        (1, 0, 5_000_000, 5_100_000, 5_400_000, "OperationalError: gone", False),
        (0, 1, 6_000_000, 6_010_000, 6_500_000, None, False),
    ]
    back, start, meta = unpack(pack(rows, 4_000_000, {"python": "3.9.16"}))
    assert start == 0 and meta == {"python": "3.9.16"}
    assert back == [(w, s, i - 4_000_000, a - 4_000_000, e - 4_000_000, err, warm) for w, s, i, a, e, err, warm in rows]


def test_a_thousand_samples_fit_run_commands_output():
    rows = [(i % 4, i // 4, i * 1_000_000, i * 1_000_000 + 3_000, i * 1_000_000 + 450_000 + i * 37, None, False)
            for i in range(remote.MAX_SAMPLES)]  # fmt: skip
    assert len(pack(rows, 0, {})) < 23_000


def test_too_many_samples_are_refused_before_any_call():
    with pytest.raises(ConfigError) as refused:
        remote.check_size(harness.Schedule(count=5000))
    assert refused.value.field == "count"
    remote.check_size(harness.Schedule(count=1000, warmup=20))


def test_the_shipped_files_run_on_python_3_9_without_labkit():
    for name, (package, file) in remote.SHIPPED.items():
        source = (Path(__import__(package, fromlist=["x"]).__file__).parent / file).read_text()
        tree = ast.parse(source, feature_version=(3, 9))
        top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        assert all(not (isinstance(n, ast.ImportFrom) and n.level) for n in top_level), name  # no relative imports
        assert all("labkit" not in ast.dump(n) for n in top_level), name


def test_the_command_is_valid_bash_and_deterministic():
    spec = {"cluster": "c", "region": "us-east-1", "workload": "point"}
    script = remote.command(spec)
    assert script == remote.command(spec)
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


# ----- the whole path against a sandbox lab -----


class RunCommandAgent:
    """Stands in for the SSM agent: runs AWS-RunShellScript commands with bash here, reports like Run Command."""

    def __init__(self, backend: SandboxBackend, bin_dir: Path) -> None:
        self.backend = backend
        self.bin_dir = bin_dir
        self.sent: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.polls = 0

    def install(self, ssm: Any) -> None:
        ssm.meta.events.register("before-call.ssm.SendCommand", self.send_command)
        ssm.meta.events.register("before-call.ssm.GetCommandInvocation", self.get_command_invocation)

    def _resolved(self, script: str) -> str:
        head, _, encoded = script.rpartition(" ")
        spec = json.loads(base64.b64decode(encoded))
        spec["connect_to"] = list(SandboxBackend().resolve(spec["host"], spec["port"]))  # the VPC's DNS
        return f"{head} {base64.b64encode(json.dumps(spec).encode()).decode()}"

    def send_command(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = json.loads(params["body"])  # the serialised request, as it would go to AWS
        assert params["DocumentName"] == "AWS-RunShellScript"
        self.sent.append(params)
        (script,) = params["Parameters"]["commands"]
        env = {**os.environ, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}",
               "AWS_ENDPOINT_URL": self.backend.endpoint_url(), "AWS_DEFAULT_REGION": self.backend.region,
               **home_credentials(labkit_home()).for_environment()}  # fmt: skip
        done = subprocess.run(
            ["bash", "-c", self._resolved(script)], env=env, capture_output=True, text=True, timeout=120
        )
        command_id = str(uuid.uuid4())  # as Run Command's ids (the API model checks the length)
        self.results[command_id] = {
            "CommandId": command_id, "InstanceId": params["InstanceIds"][0],
            "Status": "Success" if done.returncode == 0 else "Failed", "ResponseCode": done.returncode,
            "StandardOutputContent": done.stdout[:24000], "StandardErrorContent": done.stderr[:8000],
        }  # fmt: skip
        return AWSResponse("", 200, {}, None), {"Command": {"CommandId": command_id, "Status": "Pending"}}

    def get_command_invocation(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = json.loads(params["body"])
        self.polls += 1
        if self.polls == 1:  # as on AWS, right after sending: not registered yet
            error = {"Error": {"Code": "InvocationDoesNotExist", "Message": ""}}
            return AWSResponse("", 400, {}, None), error
        return AWSResponse("", 200, {}, None), self.results[params["CommandId"]]


@pytest.fixture(scope="module")
def lab(sandbox_home, tmp_path_factory):
    config, _ = sandbox_lab("remote", "ken")
    backend = AwsLikeBackend()
    create_schema(config=config, backend=SandboxBackend())
    bin_dir = tmp_path_factory.mktemp("bin")
    wrapper = bin_dir / "python3"  # the instance's python3, with PyMySQL and boto3 (a symlink would lose the venv)
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    agent = RunCommandAgent(backend, bin_dir)
    agent.install(backend.client("ssm"))
    yield config, backend, agent
    close_engines()
    close_all()


@pytest.mark.integration
def test_direct_on_aws_runs_the_harness_on_the_instance_and_brings_every_sample_back(lab):
    config, backend, agent = lab
    result = benchmark(("writer", "reader"), path="direct", count=300, warmup=5, config=config, backend=backend)
    samples = result.samples
    lab_instance = running_instance(backend, config=config)
    assert len(agent.sent) == 2 and {p["InstanceIds"][0] for p in agent.sent} == {lab_instance}
    measured = samples[~samples["warmup"]]
    assert measured.groupby("target").size().to_dict() == {"reader": 300, "writer": 300}
    assert measured["error"].isna().all()
    assert (measured["latency_us"] > 0).all() and (measured["latency_us"] < 1e6).all()
    assert set(samples["path"]) == {"direct"}
    assert result.metadata["ran_on"] == "the lab's EC2 instance" and result.metadata["instance_python"]
    script = agent.sent[0]["Parameters"]["commands"][0]
    assert "password" not in script.lower(), "the instance reads the secret itself; no password is sent"


@pytest.mark.integration
def test_on_aws_the_tunnel_cost_alternates_batches_of_each_path_in_rounds(lab):
    config, backend, agent = lab
    sent = len(agent.sent)
    table = tunnel_cost("writer", rounds=2, count=20, seed=3, config=config, backend=backend)
    assert table["interleaved"].tolist() == ["by batch"] and table["rounds"].tolist() == [2]
    assert len(agent.sent) - sent == 2, "one direct batch per round, run on the instance"
    assert table["tunnel_p50_us"][0] > 0 and table["direct_p50_us"][0] > 0


@pytest.mark.integration
def test_inserts_create_their_table_on_the_instance_and_failures_say_why(lab):
    config, backend, _ = lab
    result = benchmark("writer", workload="insert", path="direct", count=50, warmup=2, config=config, backend=backend)
    assert result.samples["error"].isna().all() and len(result.samples) == 52
    with pytest.raises(LabkitError) as failed:  # the endpoint answers, the workload's table does not exist
        benchmark("writer", workload="point", path="direct", count=10, config=config.__class__(
            lab=config.lab, learner="nobody"), backend=backend)  # fmt: skip
    assert failed.value.field in ("instance", "cluster", "path")


@pytest.mark.integration
def test_every_bench_function_follows_a_backend_that_cannot_reach_private_endpoints(lab):
    """Issue 15 item 1: replica_lag() and failover() connected straight to private endpoints by default."""
    config, backend, _ = lab
    through = benchmark("writer", count=20, warmup=2, config=config, backend=backend)  # the default: the tunnel
    assert set(through.samples["path"]) == {"tunnel"} and through.samples["error"].isna().all()
    lag = replica_lag(3, interval=0.0, config=config, backend=backend)
    assert lag.metadata["path"] == "tunnel" and lag.samples["error"].isna().all()
    interleaved = compare(rounds=4, max_rounds=4, config=config, backend=backend)
    assert interleaved.arms == [("writer", "tunnel"), ("reader", "tunnel")]
    for call in (lambda: replica_lag(3, path="direct", config=config, backend=backend),
                 lambda: compare(paths=("direct",), config=config, backend=backend),
                 lambda: failover(path="direct", config=config, backend=backend)):  # fmt: skip
        with pytest.raises(ConfigError) as refused:
            call()
        assert refused.value.field == "path" and "tunnel" in refused.value.fix
    report = failover(settle=1.0, timeout=60, config=config, backend=backend)  # last: it swaps the roles
    assert report.writer_after != report.writer_before and report.lost == []
    assert backend.direct == [], "a bench function connected straight to a private endpoint"
