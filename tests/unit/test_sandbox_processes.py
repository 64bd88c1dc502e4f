"""The sandbox by process: each module says which process runs it, the small processes start light, and the
daemon's SSM emulation reads the control plane in its own process instead of calling its own HTTP API."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.httpsession
import pytest
from moto import mock_aws
from moto.core.models import botocore_stubber
from support.backends import InProcessBackend
from werkzeug.test import Client

from labkit.access.tunnel.readiness import SSM_POLICY_ARN
from labkit.config import LabConfig
from labkit.lab.apply import apply
from labkit.sandbox.daemon.ssm import SessionManager
from labkit.sandbox.processes import pid_alive, terminate

SANDBOX = Path(__file__).resolve().parents[2] / "labkit" / "sandbox"


def _loaded(statement: str, modules: tuple[str, ...]) -> list[str]:
    probe = f"import sys; {statement}; print(' '.join(m for m in {modules!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()


def test_every_sandbox_module_says_which_process_runs_it():
    silent = []
    for path in sorted(SANDBOX.rglob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if "Runs in" not in docstring and "Runs as" not in docstring:
            silent.append(str(path.relative_to(SANDBOX)))
    assert silent == []


def test_the_session_plugin_imports_neither_boto3_nor_pandas_nor_the_client():
    heavy = ("boto3", "botocore", "pandas", "pymysql", "moto", "labkit.sandbox.control", "labkit.security")
    assert _loaded("import labkit.sandbox.procs.session_plugin", heavy) == []


def test_the_sandbox_package_serves_its_api_lazily():
    assert _loaded("import labkit.sandbox", ("labkit.sandbox.control", "boto3")) == []
    public = (
        "import labkit.sandbox as s; assert s.up.__module__ == 'labkit.sandbox.control'; assert 'resolve' in dir(s)"
    )
    assert _loaded(public, ("labkit.sandbox.control",)) == ["labkit.sandbox.control"]


# ----- the SSM emulation reads moto's backends in process -----


@pytest.fixture
def lab_in_moto(fast_moto, lab_home) -> Iterator[tuple[Any, str]]:
    """The default lab in in-process moto: (its backend, the instance id)."""
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        backend = InProcessBackend.make("us-east-1")
        ids = apply(LabConfig(lab="ssmlab", learner="ada"), backend, stream=io.StringIO()).ids
        yield backend, ids["instance"]


@contextlib.contextmanager
def no_wire_and_no_global_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the daemon's own in-process handler may answer: moto's global mock is off and HTTP fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an HTTP request left the process")

    monkeypatch.setattr(botocore.httpsession.URLLib3Session, "send", refuse)
    botocore_stubber.enabled = False
    try:
        yield
    finally:
        botocore_stubber.enabled = True  # mock_aws still runs; it turns the stubber off when it stops


def _call(sessions: SessionManager, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    def moto_app(environ: dict[str, Any], start_response: Any) -> Any:
        raise AssertionError(f"{action} reached the moto server behind the SSM emulation")

    sessions.app = moto_app
    response = Client(sessions).post(
        "/",
        data=json.dumps(body),
        headers={
            "X-Amz-Target": f"AmazonSSM.{action}",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, ...",
        },
    )
    return response.status_code, json.loads(response.get_data())


def test_describe_instance_information_reads_the_control_plane_in_process(lab_in_moto, monkeypatch):
    backend, instance_id = lab_in_moto
    sessions = SessionManager(app=None)
    filters = {"Filters": [{"Key": "InstanceIds", "Values": [instance_id]}]}
    with no_wire_and_no_global_mock(monkeypatch):
        status, online = _call(sessions, "DescribeInstanceInformation", filters)
    assert status == 200
    assert [(i["InstanceId"], i["PingStatus"]) for i in online["InstanceInformationList"]] == [(instance_id, "Online")]

    role = backend.client("iam").list_roles()["Roles"]
    [role_name] = [r["RoleName"] for r in role if r["RoleName"].startswith("ssmlab-ada")]
    backend.client("iam").detach_role_policy(RoleName=role_name, PolicyArn=SSM_POLICY_ARN)
    with no_wire_and_no_global_mock(monkeypatch):
        status, offline = _call(sessions, "DescribeInstanceInformation", filters)
        refused, error = _call(
            sessions,
            "StartSession",
            {
                "Target": instance_id,
                "DocumentName": "AWS-StartPortForwardingSession",
                "Parameters": {"portNumber": ["80"]},
            },
        )
    assert status == 200 and offline["InstanceInformationList"] == []
    assert refused == 400 and error["__type"] == "TargetNotConnected"


def test_a_process_whose_main_thread_has_exited_is_alive_until_its_last_thread_ends():
    # A multi-threaded process exits thread by thread: its main thread is a zombie while another thread still
    # runs (and still holds the process's files, its flocks among them). Until the last one ends it is alive.
    script = (
        "import ctypes, sys, threading, time\n"
        "threading.Thread(target=lambda: (sys.stdin.readline(), time.sleep(0.05))).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the main thread did not exit"
            time.sleep(0.01)
        assert pid_alive(child.pid), "the main thread is a zombie, but another thread still runs"
    finally:
        child.stdin.write("done\n")
        child.stdin.close()
        child.wait(10)
    assert not pid_alive(child.pid)


def test_terminate_returns_once_a_killed_process_is_gone():
    """`sandbox down` found a database server it had just SIGKILLed still there ("processes [...] survived
    `down`", a loaded machine): a killed process takes a while to hand its memory back. terminate() waits for it."""
    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # as a server still flushing would not stop in time
        "held = bytearray(512 * 2**20)\n"
        "held[::4096] = b'x' * len(range(0, len(held), 4096))\n"  # every page touched: freeing them takes time
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        terminate(child.pid, grace=0.1)
        assert not pid_alive(child.pid), "terminate() returned while the killed process was still exiting"
    finally:
        child.kill()
        child.wait(10)
