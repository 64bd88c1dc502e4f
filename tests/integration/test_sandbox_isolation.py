"""No local user into another's lab (#24): the sandbox's AWS API answers only its own home's signed requests,
and the tunnel and web-app ports serve their owner's processes only. Tested as another local user (a throwaway
account; the suite runs as root)."""

from __future__ import annotations

import json
import socket
import threading

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from support.local_users import require_root, run_as, throwaway_user

from labkit.home import labkit_home
from labkit.sandbox import control
from labkit.sandbox.peers import owner_only, peer_uid
from labkit.sandbox.procs.session_plugin import Forwarder
from labkit.sandbox.signing import home_credentials
from labkit.sandbox.state import read_state

ATTACK = """
import json, sys, urllib.request, urllib.error
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint = sys.argv[1] if len(sys.argv) > 1 else {endpoint!r}
out = {{}}
own = boto3.Session(aws_access_key_id="AKIAOTHERLEARNER0000", aws_secret_access_key="mine" * 10, region_name="us-east-1")
guessed = boto3.Session(aws_access_key_id={key_id!r}, aws_secret_access_key="guess" * 8, region_name="us-east-1")
for label, session in (("own key", own), ("right key id, wrong secret", guessed)):
    for service, call in (("secretsmanager", "list_secrets"), ("rds", "describe_db_clusters"), ("ec2", "describe_vpcs"),
                          ("sts", "get_caller_identity"), ("ssm", "describe_parameters")):
        client = session.client(service, endpoint_url=endpoint, config=Config(retries={{"max_attempts": 1}}))
        try:
            getattr(client, call)()
            out[f"{{label}} {{service}}"] = "ANSWERED"
        except ClientError as exc:
            out[f"{{label}} {{service}}"] = [exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]]
for path, method in (("/moto-api/data.json", "GET"), ("/moto-api/reset", "POST")):
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint + path, method=method, data=b"" if method == "POST" else None))
        out[path] = "ANSWERED"
    except urllib.error.HTTPError as exc:
        out[path] = exc.code
try:
    open({credentials!r}).read()
    out["credentials file"] = "READ"
except PermissionError:
    out["credentials file"] = "denied"
print(json.dumps(out))
"""

REFUSED = {
    "secretsmanager": {"InvalidSignatureException", "UnrecognizedClientException"},
    "ssm": {"InvalidSignatureException", "UnrecognizedClientException"},
    "rds": {"SignatureDoesNotMatch", "InvalidClientTokenId"},
    "sts": {"SignatureDoesNotMatch", "InvalidClientTokenId"},
    "ec2": {"AuthFailure"},
}


def test_another_local_user_is_refused_by_the_sandbox_api(sandbox_backend, sandbox_home):
    require_root(__file__)
    secret = sandbox_backend.client("secretsmanager").create_secret(Name="a-learners-password", SecretString="s3cret")
    state = read_state()
    credentials = home_credentials(labkit_home())
    with throwaway_user() as other:
        done = run_as(other, ATTACK.format(endpoint=state.endpoint_url, key_id=credentials.access_key_id,
                                           credentials=str(credentials.path)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    for label in ("own key", "right key id, wrong secret"):
        for service, codes in REFUSED.items():
            status, code = seen[f"{label} {service}"]
            assert code in codes and status in (400, 401, 403), (label, service, status, code)
    assert seen["right key id, wrong secret sts"][1] == "SignatureDoesNotMatch"  # the signature itself is checked
    assert seen["/moto-api/data.json"] == 403 and seen["/moto-api/reset"] == 403
    assert seen["credentials file"] == "denied"
    # ... and the lab is untouched: the owner still reads the secret the reset would have wiped
    value = sandbox_backend.client("secretsmanager").get_secret_value(SecretId=secret["ARN"])["SecretString"]
    assert value == "s3cret"


def test_a_request_signed_with_another_homes_key_is_refused(sandbox_backend, tmp_path):
    """Two homes on one machine: the second home's (valid, signed) key means nothing to the first's sandbox."""
    other = home_credentials(tmp_path)
    client = boto3.Session(region_name="us-east-1", **other.for_boto3()).client(
        "rds", endpoint_url=sandbox_backend.endpoint_url(), config=Config(retries={"max_attempts": 1})
    )
    with pytest.raises(ClientError) as refused:
        client.describe_db_clusters()
    assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_sandbox_health_check_needs_this_homes_key(sandbox_backend, tmp_path):
    endpoint = sandbox_backend.endpoint_url()
    assert control._answers(endpoint, labkit_home())
    assert not control._answers(endpoint, tmp_path)  # a home with another key pair: not its sandbox


CONNECT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as sock:
    try:
        sock.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print("read", repr(sock.recv(100)))
    except ConnectionResetError:
        print("closed")
"""


class _Silent:
    """A backend whose session calls fail: the forwarder refuses the owner's connection after accepting it."""

    def client(self, service: str):
        raise RuntimeError("no sandbox in this test")


def test_a_tunnel_port_serves_its_owner_only(capsys):
    require_root(__file__)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    forwarder = Forwarder(_Silent(), "s-1", "i-1", "writer.example", 3306, listener)
    threading.Thread(target=forwarder.serve, daemon=True).start()
    try:
        with throwaway_user() as other:
            done = run_as(other, CONNECT.replace("sys.argv[1]", str(port)))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() in ("closed", "read b''")  # closed at once, nothing read nor forwarded
        with socket.create_connection(("127.0.0.1", port), timeout=10) as mine:
            mine.recv(10)
    finally:
        forwarder.close()
    printed = capsys.readouterr().out
    assert "Connection from another local user refused for session [s-1]" in printed
    assert "Connection accepted for session [s-1]" in printed  # the owner's own connection went on


def test_peer_uid_names_the_connecting_user():
    require_root(__file__)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(2)
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert peer_uid(accepted) == 0 and owner_only(accepted)
            del client
