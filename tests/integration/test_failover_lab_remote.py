"""The failover lab on AWS: the strategies shipped to the instance with Run Command, the failure made from here.

No AWS here: a stand-in SSM agent (botocore event handlers on the SSM client) runs the AWS-RunShellScript command
labkit sends, with bash, on this machine, in the background as the agent does, against a real sandbox lab: the
shipped `labkit` tree unpacks and runs the very strategy modules, reads the cluster's secret, and writes to the
real MariaDB writer while the laptop side fails the cluster over through the API. The one liberty is name
resolution, as in test_bench_remote.py: this machine cannot resolve the private endpoint names, so the shipped
process's system resolver (socket.getaddrinfo) asks the sandbox's DNS, anew for each connection, through a
small resolver service this test runs (a sitecustomize on the process's path, standard library only, so the
shipped tree, not this checkout's labkit, is what runs).
"""

from __future__ import annotations

import base64
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest
from botocore.awsrequest import AWSResponse
from support.aws_like import AwsLikeBackend
from support.sandbox_lab import sandbox_lab

from labkit.access.lookup import running_instance
from labkit.access.sql import close_engines, credentials
from labkit.access.tunnel import close_all
from labkit.failover_lab import failover_lab, remote
from labkit.home import labkit_home
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.signing import home_credentials
from labkit.sandbox.state import read_state

SITECUSTOMIZE = """
import os, socket
_real = socket.getaddrinfo
_where = os.environ["LABKIT_TEST_RESOLVER"].split(":")
def getaddrinfo(host, port, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".amazonaws.com"):
        with socket.create_connection((_where[0], int(_where[1])), timeout=35) as s:
            s.sendall(f"{host} {port}\\n".encode())
            answer = s.makefile().readline().split()
        if answer[0] == "-":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer[0], int(answer[1])))]
    return _real(host, port, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
"""


class Resolver(socketserver.ThreadingTCPServer):
    """The VPC's DNS for the shipped process: one name a line in, `address port` (or `-`) out."""

    daemon_threads = True

    def __init__(self) -> None:
        dns = SandboxBackend()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                host, port = self.rfile.readline().decode().split()
                try:
                    address, mapped = dns.resolve(host, int(port))
                    self.wfile.write(f"{address} {mapped}\n".encode())
                except Exception:
                    self.wfile.write(b"-\n")

        super().__init__(("127.0.0.1", 0), Handler)


class BackgroundAgent:
    """Stands in for the SSM agent: runs AWS-RunShellScript commands with bash here, in the background, and
    reports them as Run Command does (not yet registered, InProgress, then the outcome and the output)."""

    def __init__(self, backend: SandboxBackend, bin_dir: Path, resolver: str) -> None:
        self.backend, self.bin_dir, self.resolver = backend, bin_dir, resolver
        self.sent: list[dict[str, Any]] = []
        self.specs: list[dict[str, Any]] = []
        self.running: dict[str, subprocess.Popen[str]] = {}
        self.polled: set[str] = set()

    def install(self, ssm: Any) -> None:
        ssm.meta.events.register("before-call.ssm.SendCommand", self.send_command)
        ssm.meta.events.register("before-call.ssm.GetCommandInvocation", self.get_command_invocation)

    def _in_this_vpc(self, script: str) -> str:
        """The instance's CA bundle is the sandbox's CA here (the spec's path would be /etc/labkit-rds-ca.pem)."""
        head, _, encoded = script.rpartition(" ")
        spec = json.loads(base64.b64decode(encoded))
        self.specs.append(spec)
        spec["ca_file"] = SandboxBackend().trust_store()
        return f"{head} {base64.b64encode(json.dumps(spec).encode()).decode()}"

    def send_command(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = json.loads(params["body"])
        assert params["DocumentName"] == "AWS-RunShellScript"
        self.sent.append(params)
        (script,) = params["Parameters"]["commands"]
        env = {**os.environ, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(self.bin_dir),
               "LABKIT_TEST_RESOLVER": self.resolver, "AWS_ENDPOINT_URL": self.backend.endpoint_url(),
               "AWS_DEFAULT_REGION": self.backend.region, **home_credentials(labkit_home()).for_environment()}  # fmt: skip
        command_id = str(uuid.uuid4())
        self.running[command_id] = subprocess.Popen(
            ["bash", "-c", self._in_this_vpc(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        return AWSResponse("", 200, {}, None), {"Command": {"CommandId": command_id, "Status": "Pending"}}

    def get_command_invocation(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = json.loads(params["body"])
        command_id = params["CommandId"]
        if command_id not in self.polled:  # as on AWS, right after sending: not registered yet
            self.polled.add(command_id)
            return AWSResponse("", 400, {}, None), {"Error": {"Code": "InvocationDoesNotExist", "Message": ""}}
        process = self.running[command_id]
        reply = {"CommandId": command_id, "InstanceId": params["InstanceId"], "Status": "InProgress"}
        if process.poll() is not None:
            out, err = process.communicate()
            reply.update(Status="Success" if process.returncode == 0 else "Failed", ResponseCode=process.returncode,
                         StandardOutputContent=out[:24000], StandardErrorContent=err[:8000])  # fmt: skip
        return AWSResponse("", 200, {}, None), reply


@pytest.fixture(scope="module")
def lab(sandbox_home, tmp_path_factory):
    config, _ = sandbox_lab("flremote", "ken")
    backend = AwsLikeBackend()
    bin_dir = tmp_path_factory.mktemp("instance")
    python = bin_dir / "python3"  # the instance's python3, with the driver, boto3 and SQLAlchemy
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (bin_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    resolver = Resolver()
    threading.Thread(target=resolver.serve_forever, daemon=True).start()
    agent = BackgroundAgent(backend, bin_dir, f"127.0.0.1:{resolver.server_address[1]}")
    agent.install(backend.client("ssm"))
    yield config, backend, agent
    resolver.shutdown()
    close_engines()
    close_all()


@pytest.mark.integration
def test_on_aws_the_strategies_run_on_the_instance_through_a_failover_made_from_here(lab, monkeypatch):
    config, backend, agent = lab
    monkeypatch.setattr(remote, "START_SECONDS", 3.0)  # the stand-in agent starts a command at once
    started = time.monotonic()
    result = failover_lab(failures=("planned",), after=12.0, seed=4, config=config, backend=backend)
    took = time.monotonic() - started
    assert backend.direct == [], "this side connected straight to a private endpoint"
    assert len(agent.sent) == 1 and agent.sent[0]["InstanceIds"] == [running_instance(backend, config=config)]
    script = agent.sent[0]["Parameters"]["commands"][0]
    assert "password" not in script.lower(), "the instance reads the secret itself; no password is sent"
    run = result.runs.iloc[0]
    assert run["how"].startswith("failover_db_cluster") and run["writer_after"] != run["writer_before"]
    assert run["writer_after"] == read_state().clusters[agent.specs[0]["cluster"]["identifier"]]["writer"]
    samples = result.samples
    assert set(samples["strategy"]) == {"naive", "backoff", "pool", "topology"}
    # the lost-write count, recounted here on the writer's own database
    acknowledged = set(samples[samples["acknowledged"]]["probe"])
    secret = credentials(config, SandboxBackend())
    port = read_state().instances[run["writer_after"]]["port"]
    connection = pymysql.connect(host="127.0.0.1", port=port, user=secret.username, password=secret.password,
                                 database="shop", ssl={"ca": SandboxBackend().trust_store()})  # fmt: skip
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT probe FROM bench_failover WHERE probe >= %s", (min(acknowledged),))
        on_writer = {row[0] for row in cursor.fetchall()}
    assert run["acknowledged"] == len(acknowledged) > 0 and run["lost"] == sorted(acknowledged - on_writer) == []
    table = result.table().loc["planned"]
    print(f"\n{result!r}\n(took {took:.1f} s)")
    assert table.loc["naive", "errors: read-only"] > 0, "naive's cached address reached the demoted writer"
    assert table.loc["naive", "recovered"] == 0
    assert table.loc["backoff", "recovered"] == 1 and table.loc["topology", "recovered"] == 1
    before = samples[samples["sent_s"] < run["call_s"]]
    assert set(before[before["acknowledged"]]["served_by"]) == {run["writer_before"]}
