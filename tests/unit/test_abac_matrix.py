"""Per-learner isolation, proven with the real policies: a class of two learners and an instructor on one account.

moto's IAM enforcement cannot evaluate conditions, policy variables or permissions boundaries (FACTS.md), so
every request here goes through the strict evaluator (tests/support/iam_eval.py) with the policies exactly as
`labkit class learners create` put them in the account, before moto serves it. The story:

1. the account's admin makes an instructor holding only the instructor policies;
2. the instructor onboards `ada` and `grace` with `learners_create` (users, tags, policies, 0600 key files);
3. grace has a lab; ada runs the whole workbook (build, break and fix, readiness, credentials, destroy) as herself;
4. the matrix: each action on grace's resources as grace (owner), ada (another learner) and the instructor;
5. every escalation path a learner has is tried and denied, including through a role she may create;
6. the instructor resets the class and removes the learners (refused while a lab is left).
"""

from __future__ import annotations

import configparser
import copy
import io
import json
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from support.backends import InProcessBackend
from support.clusters import ENGINE
from support.iam_eval import Principal, Request, evaluate
from support.iam_requests import StrictIam, World, authorizations, role_principal, user_principal
from support.learner_run import workbook
from support.simulator import Simulator
from support.strict import UserBoundaries

from labkit.aws.backend import FAKE_CREDENTIALS, Backend
from labkit.aws.policies import INSTRUCTOR_POLICIES, TAG_DB_CLASS, TAG_INSTANCE_TYPE, policy_arn, render, size
from labkit.aws.tags import (
    NODE_CLUSTER,
    NODE_FIRST_DB,
    NODE_INSTANCE,
    NODE_PUBLIC_SUBNET,
    NODE_SG_APP,
    NODE_SG_DB,
    NODE_VPC,
    ec2_filters,
)
from labkit.classroom.learners import learners_create, learners_delete, learners_list
from labkit.classroom.setup import class_setup
from labkit.config import LabConfig
from labkit.lab.resources.compute import AMI_PARAMETER

REGION = "us-east-1"
LAB = "class1"
ROOT = Path(__file__).resolve().parents[2]

ALLOWED, DENIED = "allowed", "denied"


# The account's user boundaries, which moto does not keep (support/strict.UserBoundaries): one store, seen by
# every session of the test (the admin's, the instructor's, each learner's).
BOUNDARIES = UserBoundaries()


def _admin() -> Callable[[str], Any]:
    session = boto3.Session(region_name=REGION, **FAKE_CREDENTIALS)
    BOUNDARIES.install(session.events)
    clients: dict[str, Any] = {}
    return lambda service: clients.setdefault(service, session.client(service))


def _backend(credentials: dict[str, str] | None = None, admin: Callable[[str], Any] | None = None) -> Backend:
    """A backend signing with `credentials`; with `admin`, its iam:SimulatePrincipalPolicy is answered from the
    account's policies (support/simulator.py), so a learner's preflight simulates for real."""
    made = InProcessBackend.make(REGION, credentials)
    BOUNDARIES.install(made.session().events)
    if admin is not None:
        Simulator(admin).install(made.session().events)
    return made


def _backend_of(credentials_file: Path, admin: Callable[[str], Any]) -> Backend:
    parser = configparser.ConfigParser()
    parser.read(credentials_file)
    profile = parser["labkit"]
    keys = {
        "aws_access_key_id": profile["aws_access_key_id"],
        "aws_secret_access_key": profile["aws_secret_access_key"],
    }
    return _backend(keys, admin)


@dataclass
class Classroom:
    admin: Callable[[str], Any]
    world: World
    account: str
    instructor: Backend
    learners: dict[str, Backend]
    files: dict[str, Path]
    onboarding: Any
    folder: Path
    principals: dict[str, Principal] = field(default_factory=dict)
    enforcers: dict[str, StrictIam] = field(default_factory=dict)

    def principal(self, who: str) -> Principal:
        """`who`'s policies and tags as IAM holds them now (cached: nothing changes them during a test)."""
        if who not in self.principals:
            name = "instructor" if who == "instructor" else f"{LAB}-{who}"
            self.principals[who] = user_principal(self.admin, name)
        return self.principals[who]

    def strict(self, who: str) -> StrictIam:
        if who not in self.enforcers:
            self.enforcers[who] = StrictIam(self.world, lambda: self.principal(who))
        return self.enforcers[who]

    def backend(self, who: str) -> Backend:
        return self.instructor if who == "instructor" else self.learners[who]

    def decide(self, who: str, service: str, operation: str, params: dict[str, Any]) -> str:
        """Would AWS allow `who` this call? Every authorization of the call must be allowed."""
        decided = self.strict(who).decide(service, operation, params)
        return ALLOWED if all(d.decision.allowed for d in decided) else DENIED


def _make_instructor(admin: Callable[[str], Any]) -> dict[str, str]:
    """As the account's admin, once: every labkit policy (`labkit class setup`), and the instructor, a user
    outside /labkit/ holding only the instructor policies (no tags: not a learner)."""
    iam = admin("iam")
    iam.create_user(UserName="instructor")
    setup = class_setup(backend=_backend(), instructor="instructor", yes=True)
    assert set(setup.policies.values()) == {"created"} and len(setup.attached) == len(INSTRUCTOR_POLICIES)
    key = iam.create_access_key(UserName="instructor")["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@pytest.fixture(scope="module")
def classroom(fast_moto: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Classroom]:
    from moto import mock_aws

    patch = pytest.MonkeyPatch()
    patch.setenv("LABKIT_HOME", str(tmp_path_factory.mktemp("labkit-home")))
    folder = tmp_path_factory.mktemp("keys")
    BOUNDARIES.by_user.clear()
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        admin = _admin()
        account = admin("sts").get_caller_identity()["Account"]
        world = World(admin, REGION, account)
        instructor = _backend(_make_instructor(admin))
        room = Classroom(admin, world, account, instructor, {}, {}, None, folder)
        with room.strict("instructor").enforcing(instructor):
            room.onboarding = learners_create(
                lab=LAB, names="ada,grace", backend=instructor, credentials_dir=folder, yes=True
            )
        for row in room.onboarding.rows:
            room.files[row.learner] = Path(row.credentials_file)
            room.learners[row.learner] = _backend_of(Path(row.credentials_file), admin)
        # grace's lab: built by the account's admin with her tags (who builds it does not matter to the matrix;
        # ada's own run below is the proof that a learner can build one).
        labkit_apply(LabConfig(lab=LAB, learner="grace", key_pair=True), InProcessBackend.make(REGION))
        yield room
    patch.undo()


def labkit_apply(config: LabConfig, backend: Backend) -> None:
    import labkit

    labkit.apply(config, backend, stream=io.StringIO())


# ----- 2. onboarding -----


def test_onboarding_made_tagged_users_with_private_key_files(classroom: Classroom) -> None:
    report = classroom.onboarding
    assert [(r.learner, r.result) for r in report.rows] == [("ada", "created"), ("grace", "created")]
    assert report.policies == {}, "the administrator's setup is complete: onboarding found every policy"
    printed = str(report) + json.dumps(report.to_dict())
    for learner, path in classroom.files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        secret = configparser.ConfigParser()
        secret.read(path)
        assert secret["labkit"]["aws_secret_access_key"] not in printed, "a secret reached the report"
        tags = classroom.principal(learner).tags
        assert tags == {"labkit:lab": LAB, "labkit:learner": learner, TAG_INSTANCE_TYPE: "t3.micro",
                        TAG_DB_CLASS: "db.t4g.medium"}  # fmt: skip
        assert len(classroom.principal(learner).policies) == 4
        assert (classroom.principal(learner).boundary or {}).get("_name") == "labkit-learner-boundary"
    listed = learners_list(lab=LAB, backend=classroom.instructor)
    assert [(r.learner, r.policies, r.access_keys) for r in listed.rows] == [("ada", 4, 1), ("grace", 4, 1)]


def test_onboarding_again_creates_nothing_and_issues_no_new_key(classroom: Classroom) -> None:
    with classroom.strict("instructor").enforcing(classroom.instructor):
        again = learners_create(lab=LAB, names=["ada"], backend=classroom.instructor, yes=True)
    assert [r.result for r in again.rows] == ["exists"]
    assert again.policies == {} and again.ok


# ----- 3. a learner runs the whole workbook -----


def test_a_learner_runs_the_whole_workbook_as_herself(classroom: Classroom) -> None:
    config = LabConfig(lab=LAB, learner="ada", key_pair=True, ssh_cidr="203.0.113.7/32", deletion_protection=True)
    strict = classroom.strict("ada")
    with strict.enforcing(classroom.learners["ada"]):
        remaining = workbook(config, classroom.learners["ada"])
    denied = [f"{d.operation} {d.request.resource}: {d.decision.reason}" for d in strict.log if not d.decision.allowed]
    assert not denied, denied
    assert remaining == 0
    assert {"iam:PassRole", "ec2:CreateTags", "secretsmanager:GetSecretValue"} <= {d.request.action for d in strict.log}


def _as_aws_makes_the_default_vpc(admin: Callable[[str], Any]) -> None:
    """A default VPC has an internet gateway and a route 0.0.0.0/0 to it in its main route table (Amazon VPC User
    Guide, "Default VPCs"); moto's has neither. As the account's admin, once."""
    ec2 = admin("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    if ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])["InternetGateways"]:
        return
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
    )
    ec2.create_route(
        RouteTableId=main["RouteTables"][0]["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway
    )


def test_a_learner_builds_in_the_default_vpc(classroom: Classroom) -> None:
    """vpc = "default" (what the instructor view suggests when VPC quotas run short): EC2 gives the request's tags
    only to what a call creates, so the untagged default VPC and subnet that CreateSecurityGroup and RunInstances
    use carry none; the learner policies required them there and denied both calls."""
    _as_aws_makes_the_default_vpc(classroom.admin)
    config = LabConfig(lab=LAB, learner="ada", vpc="default")
    strict = classroom.strict("ada")
    start = len(strict.log)
    with strict.enforcing(classroom.learners["ada"]):
        remaining = workbook(config, classroom.learners["ada"])
    denied = [
        f"{d.operation} {d.request.resource}: {d.decision.reason}" for d in strict.log[start:] if not d.decision.allowed
    ]
    assert not denied, denied
    assert remaining == 0
    used = [
        d.request
        for d in strict.log[start:]
        if d.operation == "ec2:CreateSecurityGroup" and ":vpc/" in d.request.resource
    ]
    assert used and not any(k.startswith("aws:RequestTag/") for r in used for k in r.context), "the VPC it uses"


def test_request_tags_go_only_to_what_a_call_creates(classroom: Classroom) -> None:
    default_vpc = classroom.admin("ec2").describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    params = {
        "GroupName": "g",
        "Description": "d",
        "VpcId": default_vpc["VpcId"],
        "TagSpecifications": _ada_tags("security-group"),
    }
    requests = authorizations(classroom.world, "ec2", "CreateSecurityGroup", params)
    by_kind = {r.resource.split(":")[-1].split("/")[0]: r for r in requests if r.action == "ec2:CreateSecurityGroup"}
    assert by_kind["security-group"].context["aws:RequestTag/labkit:learner"] == "ada"
    assert not any(key.startswith("aws:RequestTag/") for key in by_kind["vpc"].context)
    launch = _launch(_grace(classroom), "t3.micro") | {"TagSpecifications": _grace_tags("instance")}
    made = {r.resource.split(":")[-1].split("/")[0]: r for r in authorizations(classroom.world, "ec2", "RunInstances", launch)
            if r.action == "ec2:RunInstances"}  # fmt: skip
    assert (
        "aws:RequestTag/labkit:lab" in made["instance"].context
        and made["instance"].context["ec2:InstanceType"] == "t3.micro"
    )
    assert "aws:RequestTag/labkit:lab" not in made["volume"].context, "a volume gets the tags of its own ResourceType"
    assert "ec2:InstanceType" not in made["subnet"].context


# ----- 4. the matrix -----


def _grace(classroom: Classroom) -> dict[str, str]:
    """The ids of grace's resources."""
    ec2, rds = classroom.admin("ec2"), classroom.admin("rds")

    def one(node: str) -> str:
        filters = ec2_filters(LAB, "grace", node)
        if node == NODE_INSTANCE:
            reservations = ec2.describe_instances(Filters=filters)["Reservations"]
            return reservations[0]["Instances"][0]["InstanceId"]
        if node == NODE_VPC:
            return ec2.describe_vpcs(Filters=filters)["Vpcs"][0]["VpcId"]
        if node == NODE_PUBLIC_SUBNET:
            return ec2.describe_subnets(Filters=filters)["Subnets"][0]["SubnetId"]
        return ec2.describe_security_groups(Filters=filters)["SecurityGroups"][0]["GroupId"]

    cluster = f"{LAB}-grace-{NODE_CLUSTER}"
    secret = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]["MasterUserSecret"]["SecretArn"]
    role = classroom.admin("iam").list_roles(PathPrefix=f"/labkit/{LAB}/grace/")["Roles"][0]["RoleName"]
    image = classroom.admin("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    return {
        "instance": one(NODE_INSTANCE), "vpc": one(NODE_VPC), "sg": one(NODE_SG_DB), "cluster": cluster,
        "writer": f"{LAB}-grace-{NODE_FIRST_DB}", "secret": secret, "role": role,
        "subgrp": f"{LAB}-grace-db-subnet-group", "subnet": one(NODE_PUBLIC_SUBNET), "sg-app": one(NODE_SG_APP),
        "image": image, "session": f"arn:aws:ssm:{REGION}:{classroom.account}:session/{LAB}-grace-0a1b2c3d4e5f67890",
    }  # fmt: skip


def _ada_tags(kind: str) -> list[dict[str, Any]]:
    tags = [{"Key": "labkit:lab", "Value": LAB}, {"Key": "labkit:learner", "Value": "ada"}]
    return [{"ResourceType": kind, "Tags": tags}]


def _grace_tags(*kinds: str) -> list[dict[str, Any]]:
    tags = [{"Key": "labkit:lab", "Value": LAB}, {"Key": "labkit:learner", "Value": "grace"}]
    return [{"ResourceType": kind, "Tags": tags} for kind in kinds]


def _launch(g: dict[str, str], instance_type: str) -> dict[str, Any]:
    """RunInstances as labkit makes it, in grace's subnet with her app group, of `instance_type`."""
    return {"ImageId": g["image"], "InstanceType": instance_type, "MinCount": 1, "MaxCount": 1,
            "SubnetId": g["subnet"], "SecurityGroupIds": [g["sg-app"]],
            "TagSpecifications": _grace_tags("instance", "volume", "network-interface")}  # fmt: skip


def _reader(g: dict[str, str], db_class: str) -> dict[str, Any]:
    """CreateDBInstance of one more reader in grace's cluster, tagged as hers, of `db_class`."""
    return {"DBInstanceIdentifier": f"{LAB}-grace-db-9", "DBClusterIdentifier": g["cluster"], "Engine": ENGINE.name,
            "DBInstanceClass": db_class, "Tags": _grace_tags("x")[0]["Tags"]}  # fmt: skip


RULE = {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}
WIDE = {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
ADA_RDS_TAGS = [{"Key": "labkit:lab", "Value": LAB}, {"Key": "labkit:learner", "Value": "ada"}]
PROGRESS_TAG = [{"Key": "labkit:progress:01-app-to-db-rule", "Value": "2026-12-05T10:00:00Z"}]

# (row, service, operation, params from grace's ids, expected for grace / ada / the instructor)
# fmt: off
MATRIX: list[tuple[str, str, str, Callable[[dict[str, str]], dict[str, Any]], tuple[str, str, str]]] = [
    ("describe instances", "ec2", "DescribeInstances", lambda g: {}, (ALLOWED, ALLOWED, ALLOWED)),
    ("describe clusters", "rds", "DescribeDBClusters", lambda g: {}, (ALLOWED, ALLOWED, ALLOWED)),
    ("terminate the instance", "ec2", "TerminateInstances", lambda g: {"InstanceIds": [g["instance"]]}, (ALLOWED, DENIED, ALLOWED)),
    ("delete the DB security group", "ec2", "DeleteSecurityGroup", lambda g: {"GroupId": g["sg"]}, (ALLOWED, DENIED, ALLOWED)),
    ("revoke a rule", "ec2", "RevokeSecurityGroupIngress", lambda g: {"GroupId": g["sg"], "IpPermissions": [RULE]}, (ALLOWED, DENIED, ALLOWED)),
    ("authorize 0.0.0.0/0", "ec2", "AuthorizeSecurityGroupIngress", lambda g: {"GroupId": g["sg"], "IpPermissions": [WIDE]}, (ALLOWED, DENIED, DENIED)),
    ("authorize, tagged as ada", "ec2", "AuthorizeSecurityGroupIngress",
     lambda g: {"GroupId": g["sg"], "IpPermissions": [WIDE], "TagSpecifications": _ada_tags("security-group-rule")}, (DENIED, DENIED, DENIED)),
    ("delete the VPC", "ec2", "DeleteVpc", lambda g: {"VpcId": g["vpc"]}, (ALLOWED, DENIED, ALLOWED)),
    ("add a subnet to the VPC, tagged as ada", "ec2", "CreateSubnet",
     lambda g: {"VpcId": g["vpc"], "CidrBlock": "10.0.200.0/24", "TagSpecifications": _ada_tags("subnet")}, (DENIED, DENIED, DENIED)),
    ("claim the instance with ada's tags", "ec2", "CreateTags", lambda g: {"Resources": [g["instance"]], "Tags": ADA_RDS_TAGS}, (DENIED, DENIED, DENIED)),
    # a passed check tags the learner's own group labkit:progress:<exercise> (labkit.workbook.progress), and only that
    ("tag progress on the group", "ec2", "CreateTags", lambda g: {"Resources": [g["sg"]], "Tags": PROGRESS_TAG}, (ALLOWED, DENIED, DENIED)),
    ("tag progress on the instance", "ec2", "CreateTags", lambda g: {"Resources": [g["instance"]], "Tags": PROGRESS_TAG}, (DENIED, DENIED, DENIED)),
    ("tag progress and re-tag the group as ada's", "ec2", "CreateTags",
     lambda g: {"Resources": [g["sg"]], "Tags": [*PROGRESS_TAG, ADA_RDS_TAGS[1]]}, (DENIED, DENIED, DENIED)),
    ("tag the group's Name", "ec2", "CreateTags", lambda g: {"Resources": [g["sg"]], "Tags": [{"Key": "Name", "Value": "x"}]}, (DENIED, DENIED, DENIED)),
    ("delete the cluster", "rds", "DeleteDBCluster", lambda g: {"DBClusterIdentifier": g["cluster"], "SkipFinalSnapshot": True}, (ALLOWED, DENIED, ALLOWED)),
    ("delete the writer", "rds", "DeleteDBInstance", lambda g: {"DBInstanceIdentifier": g["writer"]}, (ALLOWED, DENIED, ALLOWED)),
    ("modify the cluster", "rds", "ModifyDBCluster", lambda g: {"DBClusterIdentifier": g["cluster"], "DeletionProtection": False}, (ALLOWED, DENIED, ALLOWED)),
    ("add an instance to the cluster, tagged as ada", "rds", "CreateDBInstance",
     lambda g: {"DBInstanceIdentifier": "class1-ada-sneak", "DBClusterIdentifier": g["cluster"], "DBInstanceClass": "db.t4g.medium",
                "Engine": ENGINE.name, "Tags": ADA_RDS_TAGS}, (DENIED, DENIED, DENIED)),
    ("re-tag the cluster as ada's", "rds", "AddTagsToResource",
     lambda g: {"ResourceName": f"arn:aws:rds:{REGION}:123456789012:cluster:{g['cluster']}", "Tags": ADA_RDS_TAGS}, (DENIED, DENIED, DENIED)),
    # the failover lab (06): a failure made on her own cluster through the API, a planned failover or a crash
    ("fail the cluster over", "rds", "FailoverDBCluster", lambda g: {"DBClusterIdentifier": g["cluster"]}, (ALLOWED, DENIED, DENIED)),
    ("reboot the writer with failover (a crash)", "rds", "RebootDBInstance",
     lambda g: {"DBInstanceIdentifier": g["writer"], "ForceFailover": True}, (ALLOWED, DENIED, DENIED)),
    ("read the master password", "secretsmanager", "GetSecretValue", lambda g: {"SecretId": g["secret"]}, (ALLOWED, DENIED, DENIED)),
    # a port forward: StartSession, then the plugin opens the session's data channel (and resumes it after a blip)
    ("StartSession (port forward)", "ssm", "StartSession",
     lambda g: {"Target": g["instance"], "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost"}, (ALLOWED, DENIED, DENIED)),
    ("StartSession without a document (a shell)", "ssm", "StartSession", lambda g: {"Target": g["instance"]}, (DENIED, DENIED, DENIED)),
    ("resume her session", "ssm", "ResumeSession", lambda g: {"SessionId": g["session"].rsplit("/", 1)[1]}, (ALLOWED, DENIED, DENIED)),
    ("end her session", "ssm", "TerminateSession", lambda g: {"SessionId": g["session"].rsplit("/", 1)[1]}, (ALLOWED, DENIED, DENIED)),
    # the cost guardrails: the instructor allowed grace t3.micro and db.t4g.medium
    ("launch the allowed instance type", "ec2", "RunInstances", lambda g: _launch(g, "t3.micro"), (ALLOWED, DENIED, DENIED)),
    ("launch a larger instance type", "ec2", "RunInstances", lambda g: _launch(g, "m5.24xlarge"), (DENIED, DENIED, DENIED)),
    ("add a reader of the allowed class", "rds", "CreateDBInstance", lambda g: _reader(g, "db.t4g.medium"), (ALLOWED, DENIED, DENIED)),
    ("add a reader of a larger class", "rds", "CreateDBInstance", lambda g: _reader(g, "db.r6g.16xlarge"), (DENIED, DENIED, DENIED)),
    ("SendCommand (shell script)", "ssm", "SendCommand",
     lambda g: {"InstanceIds": [g["instance"]], "DocumentName": "AWS-RunShellScript"}, (ALLOWED, DENIED, DENIED)),
    # grace may put a policy only on her role that carries the class boundary (labkit's role does)
    ("put a policy on the role", "iam", "PutRolePolicy", lambda g: {"RoleName": g["role"], "PolicyName": "x", "PolicyDocument": "{}"},
     (ALLOWED, DENIED, DENIED)),
    ("delete the role", "iam", "DeleteRole", lambda g: {"RoleName": g["role"]}, (ALLOWED, DENIED, ALLOWED)),
]
# fmt: on
MATRIX_RESULT: dict[str, tuple[str, str, str]] = {}


@pytest.mark.parametrize("row", [m[0] for m in MATRIX])
def test_the_matrix(classroom: Classroom, row: str) -> None:
    """Action x who asks, on grace's resources: the owner, another learner, the instructor."""
    _, service, operation, params, expected = next(m for m in MATRIX if m[0] == row)
    ids = _grace(classroom)
    got = tuple(classroom.decide(who, service, operation, params(ids)) for who in ("grace", "ada", "instructor"))
    MATRIX_RESULT[row] = got  # type: ignore[assignment]
    assert got == expected, f"{row}: (grace, ada, instructor) {got}, expected {expected}"


def test_a_denied_call_never_reaches_the_account(classroom: Classroom) -> None:
    """Through ada's real client: AccessDenied, and grace's instance and cluster are still there."""
    ids = _grace(classroom)
    ada = classroom.learners["ada"]
    with classroom.strict("ada").enforcing(ada):
        with pytest.raises(ClientError, match="AccessDenied"):
            ada.client("ec2").terminate_instances(InstanceIds=[ids["instance"]])
        with pytest.raises(ClientError, match="AccessDenied"):
            ada.client("secretsmanager").get_secret_value(SecretId=ids["secret"])
        assert ada.client("ec2").describe_instances(InstanceIds=[ids["instance"]])["Reservations"]
    state = classroom.admin("ec2").describe_instances(InstanceIds=[ids["instance"]])["Reservations"][0]
    assert state["Instances"][0]["State"]["Name"] == "running"


# ----- 5. escalation -----


def _boundary(classroom: Classroom) -> str:
    return policy_arn("instance-boundary", "aws", classroom.account)


def test_every_escalation_path_of_a_learner_is_denied(classroom: Classroom) -> None:
    boundary, account = _boundary(classroom), classroom.account
    own_path, grace_path = f"/labkit/{LAB}/ada/", f"/labkit/{LAB}/grace/"
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})  # fmt: skip
    ada_tags = [{"Key": "labkit:lab", "Value": LAB}, {"Key": "labkit:learner", "Value": "ada"}]
    grace_tags = [{"Key": "labkit:lab", "Value": LAB}, {"Key": "labkit:learner", "Value": "grace"}]
    role = {"RoleName": f"{LAB}-ada-escalate", "AssumeRolePolicyDocument": trust}
    admin_policy = f"arn:aws:iam::{account}:policy/AdministratorAccess"
    attempts = {
        "a role without the boundary": ("iam", "CreateRole", {**role, "Path": own_path, "Tags": ada_tags}),
        "a role with the boundary in grace's path": (
            "iam", "CreateRole", {**role, "Path": grace_path, "Tags": ada_tags, "PermissionsBoundary": boundary}),
        "a role with the boundary tagged as grace": (
            "iam", "CreateRole", {**role, "Path": own_path, "Tags": grace_tags, "PermissionsBoundary": boundary}),
        "a role with another boundary": ("iam", "CreateRole", {**role, "Path": own_path, "Tags": ada_tags,
                                                               "PermissionsBoundary": admin_policy}),
        "a new user": ("iam", "CreateUser", {"UserName": "ada-2", "Path": "/labkit/class1/"}),
        "a second key for herself": ("iam", "CreateAccessKey", {"UserName": f"{LAB}-ada"}),
        "a policy on herself": ("iam", "AttachUserPolicy", {"UserName": f"{LAB}-ada", "PolicyArn": admin_policy}),
        "re-tag herself as grace": ("iam", "TagUser", {"UserName": f"{LAB}-ada", "Tags": grace_tags}),
        "rewrite the boundary": ("iam", "CreatePolicyVersion", {"PolicyArn": boundary, "PolicyDocument": "{}",
                                                                "SetAsDefault": True}),
        "rewrite her own policy": ("iam", "CreatePolicyVersion", {
            "PolicyArn": policy_arn("learner-compute", "aws", account), "PolicyDocument": "{}", "SetAsDefault": True}),
    }  # fmt: skip
    results = {what: classroom.decide("ada", *call) for what, call in attempts.items()}
    assert results == dict.fromkeys(attempts, DENIED), results
    # the control: the one shape of role a learner may create
    allowed = {**role, "Path": own_path, "Tags": ada_tags, "PermissionsBoundary": boundary}
    assert classroom.decide("ada", "iam", "CreateRole", allowed) == ALLOWED


def test_a_role_she_may_create_gives_her_nothing_more(classroom: Classroom) -> None:
    """ada creates a bounded role and writes `"Action": "*"` into it (both allowed); the role, used from her
    instance, still cannot leave her lab: the boundary caps it. Changing or removing the boundary is denied."""
    boundary, ada = _boundary(classroom), classroom.learners["ada"]
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}  # fmt: skip
    tags = [{"Key": "labkit:lab", "Value": LAB}, {"Key": "labkit:learner", "Value": "ada"}]
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    name = f"{LAB}-ada-everything"
    with classroom.strict("ada").enforcing(ada):
        iam = ada.client("iam")
        iam.create_role(RoleName=name, Path=f"/labkit/{LAB}/ada/", AssumeRolePolicyDocument=json.dumps(trust),
                        PermissionsBoundary=boundary, Tags=tags)  # fmt: skip
        iam.put_role_policy(RoleName=name, PolicyName="everything", PolicyDocument=json.dumps(everything))
        for call in (
            lambda: iam.delete_role_permissions_boundary(RoleName=name),
            lambda: iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=boundary),
            lambda: iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"),
        ):
            with pytest.raises(ClientError, match="AccessDenied"):
                call()
    role = role_principal(classroom.admin, name)
    assert role.boundary is not None and role.tags == {"labkit:lab": LAB, "labkit:learner": "ada"}
    ids = _grace(classroom)
    secret_of_grace = classroom.world.secret(ids["secret"])
    checks = {
        "iam:CreateUser": Request("iam:CreateUser", f"arn:aws:iam::{classroom.account}:user/x"),
        "ec2:TerminateInstances (grace)": Request("ec2:TerminateInstances", "arn:aws:ec2:us-east-1:1:instance/i-1"),
        "secretsmanager:GetSecretValue (grace)": Request(
            "secretsmanager:GetSecretValue", secret_of_grace.arn,
            {f"aws:ResourceTag/{k}": v for k, v in (secret_of_grace.tags or {}).items()}),
        "rds:DescribeDBClusters (grace)": Request(
            "rds:DescribeDBClusters", f"arn:aws:rds:{REGION}:{classroom.account}:cluster:{ids['cluster']}"),
    }  # fmt: skip
    verdicts = {what: evaluate(role, request) for what, request in checks.items()}
    assert not any(v.allowed for v in verdicts.values()), verdicts
    assert all("boundary" in v.reason for v in verdicts.values()), verdicts
    # ...while what the instance role is for stays possible: the agent's channel, her own cluster
    own = Request("rds:DescribeDBClusters", f"arn:aws:rds:{REGION}:{classroom.account}:cluster:{LAB}-ada-cluster")
    assert evaluate(role, own).allowed
    assert evaluate(role, Request("ssmmessages:OpenDataChannel", "*")).allowed
    with classroom.strict("ada").enforcing(ada):  # her own role: she may remove it again
        ada.client("iam").delete_role_policy(RoleName=name, PolicyName="everything")
        ada.client("iam").delete_role(RoleName=name)


def test_pass_role_and_sessions_only_as_the_lab_uses_them(classroom: Classroom) -> None:
    ada = classroom.principal("ada")
    own_role = f"arn:aws:iam::{classroom.account}:role/labkit/{LAB}/ada/{LAB}-ada-iam-role"
    grace_role = own_role.replace("/ada/", "/grace/").replace("-ada-", "-grace-")
    to = {"iam:PassedToService": "lambda.amazonaws.com"}
    assert not evaluate(ada, Request("iam:PassRole", own_role, to)).allowed, "own role to Lambda"
    assert not evaluate(ada, Request("iam:PassRole", grace_role, {"iam:PassedToService": "ec2.amazonaws.com"})).allowed
    assert evaluate(ada, Request("iam:PassRole", own_role, {"iam:PassedToService": "ec2.amazonaws.com"})).allowed
    other = f"arn:aws:ssm:{REGION}::document/AWS-RunPowerShellScript"
    assert not evaluate(ada, Request("ssm:SendCommand", other)).allowed


def test_no_shell_through_a_session_without_a_document(classroom: Classroom) -> None:
    """AWS checks a session's document only when the request names one, or when every statement that allows
    StartSession carries ssm:SessionDocumentAccessCheck (Session Manager User Guide). This test asserted that
    the shell document was denied; AWS never asks about it for a StartSession that names no document, so without
    the condition the learner policy gave a shell on her own instance. With it, she must name a document."""
    instance = _grace(classroom)["instance"]
    shell = {"Target": instance}
    forward = {"Target": instance, "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost"}
    assert classroom.decide("grace", "ssm", "StartSession", shell) == DENIED
    assert classroom.decide("grace", "ssm", "StartSession", forward) == ALLOWED
    named = authorizations(classroom.world, "ssm", "StartSession", shell, classroom.principal("grace"))
    assert not any(":document/" in r.resource for r in named), "a start without a document authorizes none"
    # the same policies without the condition: AWS would start the default shell session
    grace = classroom.principal("grace")
    stripped = copy.deepcopy(grace.policies)
    for document in stripped:
        for statement in document["Statement"]:
            statement.get("Condition", {}).pop("BoolIfExists", None)
    without = Principal(grace.arn, grace.account, stripped, grace.boundary, grace.tags, grace.username, grace.userid)
    assert all(evaluate(without, request).allowed for request in named)


def test_a_principal_without_learner_tags_gets_nothing_from_the_learner_policies(classroom: Classroom) -> None:
    """A policy variable with no value matches nothing: an untagged user holding the learner policies can
    describe, but create, change and read secrets nowhere."""
    ada = classroom.principal("ada")
    untagged = Principal(ada.arn, ada.account, ada.policies, tags={}, username="someone")
    ids = _grace(classroom)
    for who in (untagged,):
        request = Request("ec2:TerminateInstances", f"arn:aws:ec2:{REGION}:{classroom.account}:instance/{ids['instance']}",
                          {"aws:ResourceTag/labkit:lab": LAB, "aws:ResourceTag/labkit:learner": "grace"})  # fmt: skip
        assert not evaluate(who, request).allowed
        assert evaluate(who, Request("ec2:DescribeInstances", "*")).allowed


# ----- 5b. the instructor cannot become an administrator -----

EVERYTHING = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def test_every_path_of_an_instructor_to_full_admin_is_denied(classroom: Classroom) -> None:
    """Issue 25, item 8: the instructor policy let an instructor create a `labkit-learner-*` policy with
    `"Action": "*"`, a user under /labkit/, a key, and attach it; or rewrite the boundaries with CreatePolicyVersion.
    Each of those paths, and their neighbours, is denied."""
    account, iam = classroom.account, classroom.admin("iam")
    iam.create_user(UserName="ops-admin")  # someone else's user, outside /labkit/
    admin_policy, boundary = (
        "arn:aws:iam::aws:policy/AdministratorAccess",
        policy_arn("learner-boundary", "aws", account),
    )
    labkit_arns = [p["Arn"] for p in iam.list_policies(Scope="Local", PathPrefix="/labkit/")["Policies"]]
    assert len(labkit_arns) == 8
    grace = f"{LAB}-grace"
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/instructor"}, "Action": "sts:AssumeRole"}]})  # fmt: skip
    attempts = {
        "a learner policy of its own": ("iam", "CreatePolicy", {"PolicyName": "labkit-learner-x", "Path": "/labkit/",
                                                                 "PolicyDocument": EVERYTHING}),
        "a user without the boundary": ("iam", "CreateUser", {"UserName": f"{LAB}-x", "Path": f"/labkit/{LAB}/"}),
        "a user with another boundary": ("iam", "CreateUser", {"UserName": f"{LAB}-x", "Path": f"/labkit/{LAB}/",
                                                               "PermissionsBoundary": admin_policy}),
        "a bounded user outside /labkit/": ("iam", "CreateUser", {"UserName": "x", "PermissionsBoundary": boundary}),
        "AdministratorAccess on a learner": ("iam", "AttachUserPolicy", {"UserName": grace, "PolicyArn": admin_policy}),
        "the learner boundary as a learner's policy": ("iam", "AttachUserPolicy", {"UserName": grace, "PolicyArn": boundary}),
        "the instructor's policy on a learner": ("iam", "AttachUserPolicy", {
            "UserName": grace, "PolicyArn": policy_arn("instructor-class", "aws", account)}),
        "a learner policy on someone else": ("iam", "AttachUserPolicy", {
            "UserName": "ops-admin", "PolicyArn": policy_arn("learner-compute", "aws", account)}),
        "an inline policy on a learner": ("iam", "PutUserPolicy", {"UserName": grace, "PolicyName": "x",
                                                                    "PolicyDocument": EVERYTHING}),
        "another boundary on a learner": ("iam", "PutUserPermissionsBoundary", {"UserName": grace,
                                                                                "PermissionsBoundary": admin_policy}),
        "a learner without boundary": ("iam", "DeleteUserPermissionsBoundary", {"UserName": grace}),
        "a key for someone else": ("iam", "CreateAccessKey", {"UserName": "ops-admin"}),
        "herself tagged as a learner": ("iam", "TagUser", {"UserName": "instructor", "Tags": [{"Key": "labkit:lab", "Value": LAB}]}),
        "a role she may assume": ("iam", "CreateRole", {"RoleName": "x", "Path": "/labkit/", "AssumeRolePolicyDocument": trust}),
        "a policy on a lab role": ("iam", "AttachRolePolicy", {"RoleName": _grace(classroom)["role"], "PolicyArn": admin_policy}),
        "a lab role to assume": ("iam", "UpdateAssumeRolePolicy", {"RoleName": _grace(classroom)["role"], "PolicyDocument": trust}),
        "a password for a learner": ("iam", "CreateLoginProfile", {"UserName": grace, "Password": "x"}),
        "assume anything": ("sts", "AssumeRole", {"RoleArn": f"arn:aws:iam::{account}:role/x", "RoleSessionName": "x"}),
    }  # fmt: skip
    attempts |= {f"rewrite {arn.rsplit('/', 1)[1]}": ("iam", "CreatePolicyVersion", {
        "PolicyArn": arn, "PolicyDocument": EVERYTHING, "SetAsDefault": True}) for arn in labkit_arns}  # fmt: skip
    results = {what: classroom.decide("instructor", *call) for what, call in attempts.items()}
    assert results == dict.fromkeys(attempts, DENIED), {k: v for k, v in results.items() if v != DENIED}
    # the control: the one shape of user an instructor may make, and the one kind of attachment
    bounded = {"UserName": f"{LAB}-x", "Path": f"/labkit/{LAB}/", "PermissionsBoundary": boundary}
    assert classroom.decide("instructor", "iam", "CreateUser", bounded) == ALLOWED
    learner_policy = {"UserName": grace, "PolicyArn": policy_arn("learner-network", "aws", account)}
    assert classroom.decide("instructor", "iam", "AttachUserPolicy", learner_policy) == ALLOWED


# Every IAM write the instructor's policies allow, by design: the learners' users, keys and tags, and the reset's
# removal of lab roles. None writes a policy document; the next test proves each is allowed only as intended.
INSTRUCTOR_IAM_WRITES = {
    "iam:CreateUser", "iam:PutUserPermissionsBoundary", "iam:AttachUserPolicy", "iam:DetachUserPolicy",
    "iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:DeleteUser", "iam:TagUser", "iam:DeleteRole",
    "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:DeleteInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
}  # fmt: skip


def test_an_instructor_reaches_no_policy_by_any_iam_action(classroom: Classroom) -> None:
    """Exhaustively: every IAM operation in botocore's model, on every kind of resource an instructor could name
    (learner and other users, lab and other roles, labkit and other policies), with every boundary and policy ARN
    a request could carry. What is allowed is a read or one of INSTRUCTOR_IAM_WRITES; a user is made, or a
    boundary set, only with the learner boundary; a policy is attached only if it is one of the four learner
    policies and only to a user with that boundary. So the only principals an instructor can bring about are
    bounded learners holding the administrator's learner policies (whose every escalation path is denied above),
    and no path leads to `"Action": "*"`."""
    account = classroom.account
    instructor = classroom.principal("instructor")
    arn = f"arn:aws:iam::{account}"
    learner_policies = {policy_arn(stem, "aws", account) for stem in ("learner-read", "learner-network",
                                                                       "learner-database", "learner-compute")}  # fmt: skip
    boundary = policy_arn("learner-boundary", "aws", account)
    resources = [f"{arn}:user/labkit/{LAB}/{LAB}-grace", f"{arn}:user/instructor", f"{arn}:user/ops-admin",
                 f"{arn}:role/labkit/{LAB}/grace/{LAB}-grace-iam-role", f"{arn}:role/admin",
                 f"{arn}:instance-profile/labkit/{LAB}/grace/p", *learner_policies, boundary,
                 policy_arn("instance-boundary", "aws", account), policy_arn("instructor-class", "aws", account),
                 f"{arn}:policy/other", "arn:aws:iam::aws:policy/AdministratorAccess", f"{arn}:group/admins", "*"]  # fmt: skip
    policies = [None, *learner_policies, boundary, "arn:aws:iam::aws:policy/AdministratorAccess"]
    boundaries = [None, boundary, "arn:aws:iam::aws:policy/AdministratorAccess"]
    session = boto3.Session(region_name=REGION, **FAKE_CREDENTIALS)
    operations = session._session.get_service_model("iam").operation_names
    allowed: dict[str, list[tuple[str, Any, Any]]] = {}
    for operation in operations:
        action = f"iam:{operation}"
        for resource in resources:
            for policy in policies:
                for bound in boundaries:
                    context = {k: v for k, v in (("iam:PolicyARN", policy), ("iam:PermissionsBoundary", bound)) if v}
                    if evaluate(instructor, Request(action, resource, context)).allowed:
                        allowed.setdefault(action, []).append((resource, policy, bound))
    writes = {a for a in allowed if not a.split(":")[1].startswith(("Get", "List", "Simulate"))}
    assert writes <= INSTRUCTOR_IAM_WRITES, sorted(writes - INSTRUCTOR_IAM_WRITES)
    assert "iam:CreatePolicy" not in allowed and "iam:CreatePolicyVersion" not in allowed
    for action in ("iam:CreateUser", "iam:PutUserPermissionsBoundary"):
        assert {bound for _, _, bound in allowed[action]} == {boundary}, action
        assert all(r.startswith(f"{arn}:user/labkit/") for r, _, _ in allowed[action]), action
    attaches = allowed["iam:AttachUserPolicy"]
    assert {policy for _, policy, _ in attaches} == learner_policies
    assert {bound for _, _, bound in attaches} == {boundary}
    assert {r for r, _, _ in attaches} == {f"{arn}:user/labkit/{LAB}/{LAB}-grace"}
    for action in ("iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy"):  # the reset: lab roles only
        assert all(
            r.startswith((f"{arn}:role/labkit/", f"{arn}:instance-profile/labkit/")) for r, _, _ in allowed[action]
        )


def test_a_learner_the_instructor_could_make_reaches_no_admin_action(classroom: Classroom) -> None:
    """The closure: a bounded user holding the learner policies, with any tags an instructor could give it, is
    denied what an administrator does (the roles it may create carry the instance boundary: tested above)."""
    grace = classroom.principal("grace")
    account = classroom.account
    for tags in ({"labkit:lab": LAB, "labkit:learner": "grace"}, {"labkit:lab": "x", "labkit:learner": "y"}, {}):
        made = Principal(grace.arn, account, grace.policies, grace.boundary, tags | {"labkit:instance-type": "t3.micro"},
                         grace.username, grace.userid)  # fmt: skip
        for action, resource in (
            ("iam:CreatePolicy", f"arn:aws:iam::{account}:policy/labkit/x"),
            ("iam:AttachUserPolicy", grace.arn), ("iam:PutUserPolicy", grace.arn), ("iam:CreateUser", "*"),
            ("iam:CreateAccessKey", f"arn:aws:iam::{account}:user/ops-admin"),
            ("iam:DeleteUserPermissionsBoundary", grace.arn), ("iam:PassRole", f"arn:aws:iam::{account}:role/admin"),
            ("sts:AssumeRole", f"arn:aws:iam::{account}:role/admin"), ("organizations:LeaveOrganization", "*"),
            ("s3:GetObject", "arn:aws:s3:::any/thing"), ("ec2:TerminateInstances", f"arn:aws:ec2:{REGION}:{account}:instance/i-1"),
        ):  # fmt: skip
            assert not evaluate(made, Request(action, resource)).allowed, (tags, action)


# ----- 6. the instructor resets the class -----


def test_the_instructor_resets_every_learner_then_removes_them(classroom: Classroom) -> None:
    import labkit

    instructor, strict = classroom.instructor, classroom.strict("instructor")
    start = len(strict.log)  # the matrix's questions are logged too; judge only the reset's calls
    with strict.enforcing(instructor):
        refused = learners_delete(lab=LAB, backend=instructor, credentials_dir=classroom.folder, yes=True)
        assert {r.learner: r.result for r in refused.rows}["grace"] == "refused"
        report = labkit.class_reset(lab=LAB, backend=instructor, yes=True, quiet=True)
        assert report.ok, report.table()
        gone = learners_delete(lab=LAB, backend=instructor, credentials_dir=classroom.folder, yes=True)
    denied = [
        f"{d.operation} {d.request.resource}: {d.decision.reason}" for d in strict.log[start:] if not d.decision.allowed
    ]
    assert not denied, denied
    first, second = ({r.learner: r.result for r in report.rows} for report in (refused, gone))
    assert {learner for learner, result in [*first.items(), *second.items()] if result == "deleted"} == {"ada", "grace"}
    assert second["grace"] == "deleted"
    assert not any(path.exists() for path in classroom.files.values()), "credentials files are removed"
    assert classroom.admin("iam").list_users(PathPrefix="/labkit/")["Users"] == []
    assert len(labkit.verify(LabConfig(lab=LAB, learner="grace"), InProcessBackend.make(REGION))) == 0


def test_report_the_matrix_and_the_policy_sizes(classroom: Classroom, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a check: prints what the issue asks to report (run with -s)."""
    from labkit.aws.policies import ALL_POLICY_FILES

    with capsys.disabled():
        print("\nrow | grace (owner) | ada (other learner) | instructor")
        for row, got in MATRIX_RESULT.items():
            print(f"{row} | {' | '.join(got)}")
        for stem in ALL_POLICY_FILES:
            print(f"{stem}: {max(size(render(stem, p)) for p in ('aws', 'aws-cn', 'aws-us-gov'))} characters")
