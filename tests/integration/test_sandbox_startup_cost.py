"""What a sandbox makes on its first requests: only the account and partition it serves. moto looked each caller's
access key up in the IAM of every partition, so the first request made six IAM accounts of ~1,300 AWS managed
policies each (seconds of a cold start), and every later save and load carried all six."""

from __future__ import annotations

from moto.core import DEFAULT_ACCOUNT_ID

from labkit import sandbox
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.daemon.persist import loads, snapshot_path


def test_the_first_requests_make_iam_for_the_sandbox_partition_only(own_home):
    sandbox.up(quiet=True)
    backend = SandboxBackend()
    account = backend.client("sts").get_caller_identity()["Account"]
    backend.client("iam").create_role(RoleName="lab-role", AssumeRolePolicyDocument="{}")
    backend.client("rds").describe_db_clusters()  # any call once the account's IAM exists looked the key up
    sandbox.down(quiet=True)
    with snapshot_path(own_home).open("rb") as stream:
        stream.readline()  # the header
        saved = loads(stream.read())
    assert sorted(saved["iam"]) == ["aws"], "an IAM account per partition was made and saved"
    assert [role.name for role in saved["iam"]["aws"].roles.values()] == ["lab-role"]  # saved in that account
    assert account == DEFAULT_ACCOUNT_ID
