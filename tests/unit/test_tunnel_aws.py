"""Tunnel on the AWS backend: EC2, IAM and RDS from in-process moto, SSM stubbed, a stand-in plugin on PATH.

Moto does not implement Session Manager's session calls, so the backend's SSM client is a real boto3 client
under botocore's Stubber: every call is checked against the queued expectation and the real API model, and
a call nothing was queued for fails. Its endpoint is loopback port 9, so a call that escapes (the tunnel's
guard process builds its own client) can never reach AWS. The plugin is tests/support/fakes/session-manager-plugin,
which records how it was run and forwards the local port to an echo server.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import xform_name
from botocore.stub import ANY, Stubber
from moto import mock_aws
from support.backends import InProcessBackend

from labkit.access.tunnel import PLUGIN_INSTALL, Tunnel, close_all, diagnose, open_tunnels
from labkit.access.tunnel.readiness import SSM_POLICY, SSM_POLICY_ARN
from labkit.aws.backend import FAKE_CREDENTIALS, AwsBackend
from labkit.aws.patience import TunnelTiming
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError
from labkit.lab.apply import apply
from labkit.sandbox.processes import pid_alive

FAKES = Path(__file__).resolve().parents[1] / "support" / "fakes"
PLUGIN = FAKES / "session-manager-plugin"
REGION = "us-east-1"
SSM_ENDPOINT = "http://127.0.0.1:9"  # loopback, and nothing listens on the discard port
DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
SESSION_ID = "ada-0123456789abcdef0"
TOKEN = "AAEAAdTokenValueThatMustNeverAppearInArgv0123456789"
STREAM_URL = f"wss://ssmmessages.{REGION}.amazonaws.com/v1/data-channel/{SESSION_ID}?role=publish_subscribe"
EXIT_ERROR = "fake plugin: cannot open the data channel"  # what the stand-in prints in mode "exit"
FAST = TunnelTiming(online_timeout=0.5, connect_timeout=0.5, open_timeout=5, first_delay=0.01, max_delay=0.05)
PLENTY = 200  # responses queued where the tunnel retries until a deadline (it needs about 20 a second)
# What a loaded machine may add around a deadline (diagnosis in moto, process start and stop): generous, and still
# far below the AWS timing's minutes, so a tunnel that waited for the wrong deadline fails.
SLACK = 30.0


# ----- the lab in moto -----
@dataclass
class Lab:
    config: LabConfig
    backend: Any  # the in-process moto backend apply() built the lab with
    ids: dict[str, str]
    instance_id: str
    endpoint: str  # the cluster's writer endpoint


@pytest.fixture
def lab(fast_moto, lab_home) -> Iterator[Lab]:
    """A fresh default lab (VPC, groups, role and profile, instance, cluster) in in-process moto."""
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        backend = InProcessBackend.make(REGION)
        config = LabConfig(lab="tunnellab", learner="ada")
        ids = apply(config, backend, stream=io.StringIO()).ids
        cluster = backend.client("rds").describe_db_clusters(DBClusterIdentifier=ids["cluster"])["DBClusters"][0]
        yield Lab(config, backend, ids, ids["instance"], cluster["Endpoint"])


def stop_instance(lab: Lab) -> None:
    lab.backend.client("ec2").stop_instances(InstanceIds=[lab.instance_id])


def remove_instance_profile(lab: Lab) -> None:
    ec2 = lab.backend.client("ec2")
    filters = [{"Name": "instance-id", "Values": [lab.instance_id]}]
    [association] = ec2.describe_iam_instance_profile_associations(Filters=filters)["IamInstanceProfileAssociations"]
    ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])


def detach_ssm_policy(lab: Lab) -> None:
    lab.backend.client("iam").detach_role_policy(RoleName=lab.ids["iam-role"], PolicyArn=SSM_POLICY_ARN)


def revoke_https_egress(lab: Lab) -> None:
    ec2 = lab.backend.client("ec2")
    group = lab.ids["sg-app"]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    https = [r["SecurityGroupRuleId"] for r in rules if r["IsEgress"] and r.get("FromPort") == 443]
    assert https, "the lab's app group should allow https out"
    ec2.revoke_security_group_egress(GroupId=group, SecurityGroupRuleIds=https)


# ----- the stubbed SSM client -----
class StubbedSsm:
    """A real boto3 SSM client under a Stubber, with a log of every call made on it: (operation, params)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.client = boto3.Session(region_name=REGION, **FAKE_CREDENTIALS).client("ssm")
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register_first("before-parameter-build.ssm", self._log)
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def _log(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((xform_name(model.name), dict(params)))

    @property
    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    # queue the answers, in the order the tunnel will ask
    def online(self) -> None:
        self._describe([{"InstanceId": self.lab.instance_id, "PingStatus": "Online", "PlatformType": "Linux"}])

    def not_online(self, times: int = 1) -> None:
        for _ in range(times):
            self._describe([])

    def _describe(self, found: list[dict[str, Any]]) -> None:
        expected = {"Filters": [{"Key": "InstanceIds", "Values": [self.lab.instance_id]}]}
        self.stubber.add_response("describe_instance_information", {"InstanceInformationList": found}, expected)

    def start(self) -> None:
        response = {
            "SessionId": SESSION_ID,
            "TokenValue": TOKEN,
            "StreamUrl": STREAM_URL,
            "ResponseMetadata": {"RequestId": "req-1", "HTTPStatusCode": 200},
        }
        self.stubber.add_response("start_session", response, self._start_params())

    def not_connected(self, times: int = 1) -> None:
        for _ in range(times):
            self.stubber.add_client_error(
                "start_session",
                service_error_code="TargetNotConnected",
                service_message=f"{self.lab.instance_id} is not connected.",
                expected_params=self._start_params(),
            )

    def _start_params(self) -> dict[str, Any]:
        parameters = {"host": [self.lab.endpoint], "portNumber": ["3306"], "localPortNumber": ANY}
        return {
            "Target": self.lab.instance_id,
            "DocumentName": DOCUMENT,
            "Parameters": parameters,  # the local port is checked from the call log, once the tunnel has one
            "Reason": "labkit tunnel to writer",
        }

    def terminate(self) -> None:
        self.stubber.add_response("terminate_session", {"SessionId": SESSION_ID}, {"SessionId": SESSION_ID})


class StubbedAwsBackend(AwsBackend):
    """The AWS backend, its EC2/IAM/RDS calls going to in-process moto and its SSM calls to the Stubber."""

    def __init__(self, session: boto3.Session, ssm: Any) -> None:
        super().__init__(REGION)
        self._session = session
        self._ssm = ssm

    def session(self) -> boto3.Session:
        return self._session

    def client(self, service: str) -> Any:
        return self._ssm if service == "ssm" else super().client(service)


# ----- the far end, and the plugin's traces -----
@pytest.fixture
def echo_server() -> Iterator[tuple[int, list[Any]]]:
    """A TCP echo server on loopback: (its port, the peer address of every connection it accepted)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[Any] = []

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            accepted.append(peer)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    try:
        server.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    server.close()


def roundtrip(port: int, payload: bytes) -> bytes:
    """Send `payload` to 127.0.0.1:port, half-close, and return everything that comes back."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        while chunk := conn.recv(65536):
            received += chunk
    return bytes(received)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Aws:
    lab: Lab
    backend: StubbedAwsBackend
    ssm: StubbedSsm
    record: Path
    echo_port: int
    echo_accepted: list[Any]

    def tunnel(self, timing: TunnelTiming = FAST, **kwargs: Any) -> Tunnel:
        return Tunnel("writer", config=self.lab.config, backend=self.backend, timing=timing, **kwargs)

    def plugin_runs(self) -> list[dict[str, Any]]:
        """One record per time the stand-in plugin ran (none when the file is absent)."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture
def aws(lab, echo_server, tmp_path, monkeypatch) -> Iterator[Aws]:
    """The lab seen through the AWS backend: SSM stubbed on a loopback endpoint, the stand-in plugin on PATH."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", SSM_ENDPOINT)  # before any SSM client exists
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKES), str(Path(sys.executable).parent), os.environ["PATH"]]))
    record = tmp_path / "plugin-runs.jsonl"
    monkeypatch.setenv("FAKE_PLUGIN_RECORD", str(record))
    monkeypatch.setenv("FAKE_PLUGIN_FORWARD_TO", f"127.0.0.1:{echo_server[0]}")
    monkeypatch.delenv("FAKE_PLUGIN_MODE", raising=False)
    ssm = StubbedSsm(lab)
    assert ssm.client.meta.endpoint_url == SSM_ENDPOINT
    backend = StubbedAwsBackend(lab.backend.session(), ssm.client)
    assert backend.session_plugin() == [str(PLUGIN)]
    yield Aws(lab, backend, ssm, record, *echo_server)
    close_all()  # a failed test must not leave a plugin running
    ssm.stubber.deactivate()


def open_fails(tunnel: Tunnel, error: type[LabkitError] = LabkitError) -> tuple[LabkitError, float]:
    """Open `tunnel`, which must raise `error`; returns the error and how long it took."""
    started = time.monotonic()
    with pytest.raises(error) as caught:
        tunnel.open()
    return caught.value, time.monotonic() - started


# ----- opening, forwarding and closing -----
def test_the_plugin_runs_as_the_aws_cli_runs_it_and_the_port_forwards_to_the_cluster(aws):
    aws.ssm.online()
    aws.ssm.start()
    aws.ssm.terminate()
    tunnel = aws.tunnel().open()
    try:
        [run] = aws.plugin_runs()
        argv = run["argv"]
        assert argv[0] == str(PLUGIN)
        assert argv[1:5] == ["AWS_SSM_START_SESSION_RESPONSE", REGION, "StartSession", ""]
        assert json.loads(argv[5]) == {
            "Target": aws.lab.instance_id,
            "DocumentName": DOCUMENT,
            "Parameters": {"host": [aws.lab.endpoint], "portNumber": ["3306"], "localPortNumber": [str(tunnel.port)]},
        }
        assert argv[6] == SSM_ENDPOINT and len(argv) == 7, "the SSM endpoint URL comes last"
        [start] = aws.ssm.params("start_session")
        assert start["Parameters"]["localPortNumber"] == [str(tunnel.port)]

        assert json.loads(run["env"]) == {"SessionId": SESSION_ID, "TokenValue": TOKEN, "StreamUrl": STREAM_URL}
        assert not any(TOKEN in arg for arg in argv), "the session token must not be visible in `ps`"
        assert run["pgid"] != os.getpgid(0), "the plugin runs in its own process group"

        assert tunnel.is_open and tunnel.session_id == SESSION_ID
        assert tunnel.address == f"127.0.0.1:{tunnel.port}"
        assert tunnel in open_tunnels()
        payload = os.urandom(300_000)
        assert roundtrip(tunnel.port, payload) == payload
        assert len(aws.echo_accepted) == 1
        assert tunnel.open() is tunnel and len(aws.plugin_runs()) == 1, "opening an open tunnel is a no-op"
    finally:
        tunnel.close()

    aws.ssm.stubber.assert_no_pending_responses()
    assert aws.ssm.operations == ["describe_instance_information", "start_session", "terminate_session"]
    assert not tunnel.is_open and tunnel not in open_tunnels()
    assert not pid_alive(run["pid"])
    with pytest.raises(ProcessLookupError):
        os.killpg(run["pgid"], 0)  # nothing of the plugin's process group is left
    assert port_is_free(tunnel.port)

    tunnel.close()
    assert aws.ssm.operations[-1] == "terminate_session" and len(aws.ssm.calls) == 3, "a second close does nothing"


def test_the_context_manager_closes_the_tunnel(aws):
    aws.ssm.online()
    aws.ssm.start()
    aws.ssm.terminate()
    with aws.tunnel() as tunnel:
        assert tunnel.is_open
        assert roundtrip(tunnel.port, b"SELECT 1") == b"SELECT 1"
        [run] = aws.plugin_runs()
    aws.ssm.stubber.assert_no_pending_responses()
    assert not tunnel.is_open and not pid_alive(run["pid"])
    assert port_is_free(tunnel.port)


def test_a_requested_local_port_and_the_aws_profile_reach_the_plugin(aws, monkeypatch):
    for service in ("ec2", "rds"):
        aws.backend.client(service)  # made now: a boto3 client made with AWS_PROFILE set would look the profile up
    monkeypatch.setenv("AWS_PROFILE", "lab-profile")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    aws.ssm.online()
    aws.ssm.start()
    aws.ssm.terminate()
    with aws.tunnel(local_port=port) as tunnel:
        assert tunnel.port == port and tunnel.address == f"127.0.0.1:{port}"
        [run] = aws.plugin_runs()
        assert run["argv"][4] == "lab-profile"
        assert json.loads(run["argv"][5])["Parameters"]["localPortNumber"] == [str(port)]
        assert roundtrip(port, b"ping") == b"ping"
    aws.ssm.stubber.assert_no_pending_responses()


# ----- start_session retries -----
def test_target_not_connected_is_retried_until_the_session_starts(aws):
    aws.ssm.online()
    aws.ssm.not_connected(times=2)
    aws.ssm.start()
    aws.ssm.terminate()
    with aws.tunnel() as tunnel:
        assert tunnel.is_open
        assert roundtrip(tunnel.port, b"after retries") == b"after retries"
    aws.ssm.stubber.assert_no_pending_responses()
    assert aws.ssm.operations.count("start_session") == 3
    assert len(aws.plugin_runs()) == 1


def test_target_not_connected_past_the_connect_timeout_fails_without_starting_the_plugin(aws):
    aws.ssm.online()
    aws.ssm.not_connected(times=PLENTY)
    error, took = open_fails(aws.tunnel())
    assert error.field == "ssm"
    assert "TargetNotConnected" in error.message
    assert "SSM agent is not connected" in error.fix
    assert FAST.connect_timeout <= took < FAST.connect_timeout + SLACK
    assert aws.ssm.operations.count("start_session") > 3
    assert "terminate_session" not in aws.ssm.operations, "no session was started, so none to end"
    assert not aws.record.exists(), "the plugin must not run without a session"


# ----- the plugin is missing, fails, or says nothing -----
def test_a_missing_plugin_ends_the_started_session_and_says_how_to_install_it(aws, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no plugin anywhere (the guard would run by sys.executable's path)
    assert aws.backend.session_plugin() is None
    aws.ssm.online()
    aws.ssm.start()
    aws.ssm.terminate()
    error, _ = open_fails(aws.tunnel())
    aws.ssm.stubber.assert_no_pending_responses()
    assert aws.ssm.operations == ["describe_instance_information", "start_session", "terminate_session"]
    assert error.field == "session-manager-plugin"
    assert error.fix == PLUGIN_INSTALL
    for remedy in ("brew install --cask session-manager-plugin", "dpkg -i", ".deb", "Windows", ".rpm"):
        assert remedy in error.fix
    assert not aws.record.exists()


def test_a_plugin_that_exits_reports_its_stderr_and_ends_the_session(aws, monkeypatch):
    monkeypatch.setenv("FAKE_PLUGIN_MODE", "exit")
    aws.ssm.online()
    aws.ssm.start()
    aws.ssm.terminate()
    tunnel = aws.tunnel(timing=replace(FAST, open_timeout=SLACK))
    error, took = open_fails(tunnel)
    assert error.field == "session-manager-plugin"
    assert "exited" in error.message and EXIT_ERROR in error.message
    assert took < SLACK  # as soon as it exits, not at the open timeout
    aws.ssm.stubber.assert_no_pending_responses()
    assert aws.ssm.operations[-1] == "terminate_session"
    assert not tunnel.is_open and tunnel not in open_tunnels()
    [run] = aws.plugin_runs()
    assert not pid_alive(run["pid"])


def test_a_silent_plugin_is_killed_after_the_open_timeout(aws, monkeypatch):
    monkeypatch.setenv("FAKE_PLUGIN_MODE", "silent")
    aws.ssm.online()
    aws.ssm.start()
    aws.ssm.terminate()
    tunnel = aws.tunnel(timing=replace(FAST, open_timeout=1))
    error, took = open_fails(tunnel)
    assert error.field == "session-manager-plugin"
    assert "did not open the port within 1 s" in error.message
    assert 1 <= took < 1 + SLACK
    aws.ssm.stubber.assert_no_pending_responses()
    assert aws.ssm.operations[-1] == "terminate_session"
    [run] = aws.plugin_runs()
    assert not pid_alive(run["pid"]), "the plugin must not outlive the failed open"
    assert not tunnel.is_open and tunnel not in open_tunnels()


def test_a_local_port_in_use_fails_before_any_ssm_call(aws):
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        error, _ = open_fails(aws.tunnel(local_port=port), ConfigError)
    assert error.field == "local_port"
    assert str(port) in error.message
    assert aws.ssm.calls == [], "nothing was queued, so any SSM call would have failed the stubber"
    assert not aws.record.exists()


# ----- an instance Session Manager cannot reach -----
BREAKAGES: dict[str, tuple[Callable[[Lab], None], str, Callable[[Lab], list[str]]]] = {
    # breakage: (how, the first check to fail, what its fix must name)
    "stopped": (stop_instance, "instance is running", lambda lab: ["start-instances", lab.instance_id]),
    "no profile": (
        remove_instance_profile,
        "instance profile attached",
        lambda lab: ["associate-iam-instance-profile", lab.instance_id],
    ),
    "no ssm policy": (
        detach_ssm_policy,
        f"role has {SSM_POLICY}",
        lambda lab: ["attach-role-policy", lab.ids["iam-role"], SSM_POLICY_ARN],
    ),
    "no https out": (
        revoke_https_egress,
        "outbound https to the SSM endpoints",
        lambda lab: ["authorize-security-group-egress", lab.ids["sg-app"], '"FromPort":443', "0.0.0.0/0"],
    ),
}


@pytest.mark.parametrize("breakage", ["no profile", "no ssm policy", "stopped"])
def test_an_instance_that_cannot_come_online_fails_at_once_with_the_fix(aws, breakage):
    how, check, remedies = BREAKAGES[breakage]
    how(aws.lab)
    aws.ssm.not_online()
    error, took = open_fails(aws.tunnel(timing=replace(FAST, online_timeout=SLACK)))
    assert took < SLACK  # at once, not at the online timeout
    assert error.field == "instance"
    assert check in error.message
    for remedy in remedies(aws.lab):
        assert remedy in error.fix
    aws.ssm.stubber.assert_no_pending_responses()
    assert aws.ssm.operations == ["describe_instance_information"], "no session is started"
    assert not aws.record.exists()


def test_an_instance_that_passes_every_check_but_never_comes_online_fails_after_the_online_timeout(aws):
    aws.ssm.not_online(times=PLENTY)
    # Long enough for several polls however busy the machine: with FAST's 0.5 s, one slow round of checks (in-process
    # moto, beside a loaded suite) outlasted the deadline, so "it polls until the deadline" saw one poll.
    timing = replace(FAST, online_timeout=2.0)
    error, took = open_fails(aws.tunnel(timing=timing))
    assert timing.online_timeout <= took < timing.online_timeout + SLACK
    assert error.field == "instance"
    assert "passes every check" in error.message and "not come Online" in error.message
    assert "SSM agent" in error.fix
    assert set(aws.ssm.operations) == {"describe_instance_information"}
    assert len(aws.ssm.operations) > 1, "it polls until the deadline"
    assert not aws.record.exists()


# ----- diagnose on its own -----
def test_diagnose_finds_the_default_lab_ready(lab):
    readiness = diagnose(lab.backend, lab.instance_id)
    assert readiness.ready and not readiness.problems
    assert [check.name for check in readiness.checks] == [
        "instance is running",
        "instance profile attached",
        f"role has {SSM_POLICY}",
        "outbound https to the SSM endpoints",
    ]
    assert lab.ids["iam-role"] in readiness.checks[1].detail
    assert "through the internet" in readiness.checks[3].detail


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_diagnose_names_the_failing_check_and_its_remedy(lab, breakage):
    how, check, remedies = BREAKAGES[breakage]
    how(lab)
    readiness = diagnose(lab.backend, lab.instance_id)
    assert not readiness.ready
    failing = {c.name: c for c in readiness.problems}
    assert readiness.problems[0].name == check
    for remedy in remedies(lab):
        assert remedy in failing[check].fix
    if breakage in ("no ssm policy", "no https out"):
        assert list(failing) == [check], "the other checks still pass"
    error = readiness.error()
    assert error.field == "instance" and error.fix == failing[check].fix
    assert "NOT ready" in str(readiness) and f"FAIL {check}" in str(readiness)


def test_a_tunnel_closed_under_a_connected_client_can_be_reopened_on_the_same_port(aws):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for _ in range(2):
        aws.ssm.online()
        aws.ssm.start()
        aws.ssm.terminate()
    first = aws.tunnel(local_port=port).open()
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.sendall(b"x")
    assert client.recv(1) == b"x"
    first.close()  # the plugin dies first, so its side of the connection closes first (TIME_WAIT on the port)
    assert client.recv(1) == b""
    client.close()
    with aws.tunnel(local_port=port) as again:
        assert roundtrip(again.port, b"again") == b"again"


def test_the_app_tunnel_forwards_to_port_8080_on_the_instance_itself(aws):
    aws.ssm.online()
    response = {"SessionId": SESSION_ID, "TokenValue": TOKEN, "StreamUrl": STREAM_URL}
    expected = {
        "Target": aws.lab.instance_id,
        "DocumentName": "AWS-StartPortForwardingSession",  # no remote host: the instance's own port
        "Parameters": {"portNumber": ["8080"], "localPortNumber": ANY},
        "Reason": "labkit tunnel to app",
    }
    aws.ssm.stubber.add_response("start_session", response, expected)
    aws.ssm.terminate()
    with Tunnel("app", config=aws.lab.config, backend=aws.backend, timing=FAST) as tunnel:
        [run] = aws.plugin_runs()
        assert json.loads(run["argv"][5])["Parameters"] == {
            "portNumber": ["8080"],
            "localPortNumber": [str(tunnel.port)],
        }
        assert tunnel.target.describe() == f"app: port 8080 on the instance via {aws.lab.instance_id}"
    aws.ssm.stubber.assert_no_pending_responses()


def test_a_tunnel_goes_only_to_an_endpoint_of_this_accounts_databases(lab):
    from labkit.access.tunnel.target import resolve_target

    target = resolve_target(lab.endpoint, lab.config, lab.backend)
    assert (target.host, target.port) == (lab.endpoint, 3306)
    with pytest.raises(LabkitError) as refused:
        resolve_target("example.com", lab.config, lab.backend)  # before: a held tunnel to nothing
    assert refused.value.field == "to" and "labkit.endpoints(config)" in refused.value.fix
