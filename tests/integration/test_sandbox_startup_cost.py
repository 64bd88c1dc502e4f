"""What a sandbox makes on its first requests: only the account and partition it serves. moto looked each caller's
access key up in the IAM of every partition, so the first request made six IAM accounts of ~1,300 AWS managed
policies each (seconds of a cold start), and every later save and load carried all six."""

from __future__ import annotations

from moto.core import DEFAULT_ACCOUNT_ID

from labkit import sandbox
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.daemon.persist import dumps, loads, snapshot_path


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


def _saved_account(home):
    with snapshot_path(home).open("rb") as stream:
        header = stream.readline()
        return header, loads(stream.read())


def test_an_old_home_sheds_the_iam_of_partitions_it_never_used_and_keeps_its_lab(own_home, monkeypatch):
    """A home saved before the fix holds an IAM per partition; its next start drops the ones that hold only what
    moto makes (AWS's managed policies) and keeps everything else: the lab, and a partition a learner used."""
    from moto.iam.models import IAMBackend

    sandbox.up(quiet=True)
    backend = SandboxBackend()
    backend.client("iam").create_role(RoleName="lab-role", AssumeRolePolicyDocument="{}")
    vpc = backend.client("ec2").create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    sandbox.down(quiet=True)
    header, saved = _saved_account(own_home)
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # as the daemon made them: ~1,300 each
    for partition in ("aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-f"):
        saved["iam"][partition] = IAMBackend(partition, DEFAULT_ACCOUNT_ID)
    used = saved["iam"]["aws-us-gov"]
    used.create_role("gov-role", "{}", "/", None, "", [], None)  # something a learner made there
    snapshot_path(own_home).write_bytes(header + dumps(saved))

    sandbox.up(quiet=True)
    backend = SandboxBackend()
    assert [r["RoleName"] for r in backend.client("iam").list_roles()["Roles"]] == ["lab-role"]
    assert [v["VpcId"] for v in backend.client("ec2").describe_vpcs(VpcIds=[vpc])["Vpcs"]] == [vpc]
    sandbox.down(quiet=True)
    _, saved = _saved_account(own_home)
    assert sorted(saved["iam"]) == ["aws", "aws-us-gov"], "the unused partitions' IAM was kept"
    assert [role.name for role in saved["iam"]["aws-us-gov"].roles.values()] == ["gov-role"]
    assert [role.name for role in saved["iam"]["aws"].roles.values()] == ["lab-role"]
