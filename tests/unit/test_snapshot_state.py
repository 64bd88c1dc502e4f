"""The control-plane snapshot (sandbox/daemon/persist.py) holds whatever moto keeps, and a save that fails for
any reason fails one call whole: rolled back, answered with AWS's 503, the server still serving.

In-process moto; the rollback test runs moto's real WSGI app behind the daemon's `SaveOnChange` on a loopback
server, as the daemon does.
"""

from __future__ import annotations

import io
import threading
import zipfile

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID

from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.sandbox.daemon.changes import SaveOnChange
from labkit.sandbox.daemon.persist import ControlPlaneStore

REGION = "us-east-1"


@pytest.fixture
def store(tmp_path, fast_moto):
    (tmp_path / "data").mkdir()
    with mock_aws():
        yield ControlPlaneStore(tmp_path, DEFAULT_ACCOUNT_ID)


def _restart(store: ControlPlaneStore) -> None:
    """What a restarted daemon does: save, then load the snapshot in place of what moto holds."""
    store.save()
    assert ControlPlaneStore(store.path.parent.parent, store.account).load()


def _session() -> boto3.Session:
    return boto3.Session(region_name=REGION, **FAKE_CREDENTIALS)


def test_a_paginated_get_resources_is_saved_and_its_token_expires_with_the_restart(store):
    ec2, tagging = _session().client("ec2"), _session().client("resourcegroupstaggingapi")
    vpcs = {
        ec2.create_vpc(
            CidrBlock="10.0.0.0/16",
            TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "n", "Value": str(n)}]}],
        )["Vpc"]["VpcId"]
        for n in range(3)
    }
    first = tagging.get_resources(ResourcesPerPage=1)  # moto keeps a generator for the next page
    assert first["PaginationToken"]
    _restart(store)
    with pytest.raises(ClientError) as expired:  # as AWS's tokens expire: the listing cannot resume
        tagging.get_resources(ResourcesPerPage=1, PaginationToken=first["PaginationToken"])
    assert expired.value.response["Error"]["Code"] == "PaginationTokenExpiredException"
    listed = {
        r["ResourceARN"].rpartition("/")[2]
        for page in tagging.get_paginator("get_resources").paginate(ResourcesPerPage=1)
        for r in page["ResourceTagMappingList"]
    }
    assert listed == vpcs  # a fresh listing sees every resource, page by page


def test_locks_and_weak_references_come_back_working(store):
    session = _session()
    session.client("ecr").describe_repositories()  # a read: the ECR backend is made, with its RLock
    role = session.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("fn.py", "def handler(event, context):\n    return 1\n")
    session.client("lambda").create_function(
        FunctionName="fn", Runtime="python3.11", Role=role, Handler="fn.handler", Code={"ZipFile": code.getvalue()}
    )  # lambda's backend finds functions through a WeakValueDictionary
    _restart(store)
    ecr = get_backend("ecr")[DEFAULT_ACCOUNT_ID][REGION]
    with ecr.registry_scanning_configuration_update_lock:  # a new, free lock
        pass
    assert session.client("lambda").get_function(FunctionName="fn")["Configuration"]["FunctionName"] == "fn"


def _poisoning(app, poisoned: threading.Event):
    """moto's app, but the next CreateVpc leaves state in the account that pickle cannot take."""

    def wsgi(environ, start_response):
        result = app(environ, start_response)
        if poisoned.is_set():
            poisoned.clear()
            for vpc in get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION].vpcs.values():
                vpc.hook = lambda: None  # a local function: PicklingError, not an OSError
        return result

    return wsgi


def test_a_save_that_fails_for_any_reason_rolls_the_call_back_and_answers_503(store):
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    poisoned = threading.Event()
    app = SaveOnChange(_poisoning(DomainDispatcherApplication(create_backend_app), poisoned), store)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ec2 = _session().client(
            "ec2",
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            config=Config(retries={"total_max_attempts": 1}),
        )
        kept = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        poisoned.set()
        with pytest.raises(ClientError) as failed:
            ec2.create_vpc(CidrBlock="10.2.0.0/16")
        error = failed.value.response["Error"]
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert error["Code"] == "ServiceUnavailable" and "nothing was changed" in error["Message"]
        cidrs = {v["CidrBlock"] for v in ec2.describe_vpcs()["Vpcs"]}
        assert "10.2.0.0/16" not in cidrs and "10.1.0.0/16" in cidrs  # rolled back whole, the earlier call kept
        after = ec2.create_vpc(CidrBlock="10.3.0.0/16")["Vpc"]["VpcId"]  # still serving, and saving
    finally:
        server.shutdown()
    assert ControlPlaneStore(store.path.parent.parent, store.account).load()
    saved = {v.id for v in get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION].vpcs.values()}
    assert {kept, after} <= saved
    assert not any(v.cidr_block == "10.2.0.0/16" for v in get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION].vpcs.values())


def test_ssm_parameters_moto_loads_lazily_still_load_after_a_restart(store):
    ssm = _session().client("ssm")
    ssm.describe_parameters()  # the daemon's warm-up: SSM's parameter store exists, AWS's public ones not yet loaded
    _restart(store)
    name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64"  # how the lab finds its AMI
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"].startswith("ami-")
