"""The instructor's view and reset (issue 7) on a simulated class in strict in-process moto.

The class: three learners of lab `auroralab` (bob's cluster deletion-protected, carol with a detached
network interface left in her lab), plus bystanders that must survive every reset: the network of
another lab, an untagged VPC named like a lab with an untagged instance in it, and an untagged IAM role
named like a lab.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from support.strict import aws_error

from labkit.aws.patience import Timing
from labkit.aws.tags import lab_tags
from labkit.classroom import class_reset, class_status, parse_age
from labkit.classroom.scan import scan
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.lab.graph import deletion_order
from labkit.lab.inventory import inventory, status, verify
from labkit.lab.resources import LabContext
from labkit.lab.resources.compute import AMI_PARAMETER

FAST = Timing(poll_seconds=0.01, retry_attempts=4, retry_first_delay=0.01, retry_max_delay=0.02)
LAB, LEARNERS = "auroralab", ("alice", "bob", "carol")


def learner_config(learner: str, **changes: object) -> LabConfig:
    cidr = f"10.{42 + LEARNERS.index(learner)}.0.0/16" if learner in LEARNERS else "10.60.0.0/16"
    settings = {"lab": LAB, "learner": learner, "readers": 0, "vpc_cidr": cidr} | changes
    return LabConfig(**settings)  # type: ignore[arg-type]


def lab_ids(backend, learner: str, lab: str = LAB) -> set[str]:
    """What destroy would delete for one learner (the types reset deletes)."""
    config = LabConfig(lab=lab, learner=learner)
    return {f.resource_id for f in inventory(LabContext(config, backend), deletion_order())}


class Bystanders:
    """Things in the account that no reset of `auroralab` may touch."""

    def __init__(self, backend) -> None:
        ec2, iam = backend.client("ec2"), backend.client("iam")
        self.other_lab = LabConfig(lab="otherlab", learner="alice", vpc_cidr="10.70.0.0/16")
        apply(self.other_lab, backend, only="network", stream=io.StringIO())
        self.other_status = status(self.other_lab, backend)
        backend.strict.require_tags = False  # the account also holds things labkit never made
        name = [{"Key": "Name", "Value": f"{LAB}-dave-vpc"}]
        spec = [{"ResourceType": "vpc", "Tags": name}]
        self.vpc = ec2.create_vpc(CidrBlock="10.80.0.0/16", TagSpecifications=spec)["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=self.vpc, CidrBlock="10.80.1.0/24")["Subnet"]["SubnetId"]
        ami = backend.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
        run = ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnet)
        self.instance = run["Instances"][0]["InstanceId"]
        self.role = iam.create_role(RoleName=f"{LAB}-handmade", AssumeRolePolicyDocument="{}")["Role"]["RoleName"]
        backend.strict.require_tags = True

    def survived(self, backend) -> None:
        ec2 = backend.client("ec2")
        assert status(self.other_lab, backend).equals(self.other_status), "another lab is untouched"
        assert ec2.describe_vpcs(VpcIds=[self.vpc])["Vpcs"]
        instance = ec2.describe_instances(InstanceIds=[self.instance])["Reservations"][0]["Instances"][0]
        assert instance["State"]["Name"] == "running"
        assert backend.client("iam").get_role(RoleName=self.role)["Role"]


def detached_interface(backend, learner: str) -> str:
    """A lab-tagged interface left detached in the learner's public subnet, in the app group."""
    config = LabConfig(lab=LAB, learner=learner)
    ctx = LabContext(config, backend)
    ec2 = backend.client("ec2")
    subnet = ec2.describe_subnets(Filters=ctx.filters("subnet-public"))["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups(Filters=ctx.filters("sg-app"))["SecurityGroups"][0]["GroupId"]
    spec = [{"ResourceType": "network-interface", "Tags": lab_tags(LAB, learner, "instance")}]
    eni = ec2.create_network_interface(SubnetId=subnet, Groups=[group], TagSpecifications=spec)
    return eni["NetworkInterface"]["NetworkInterfaceId"]


def build_class(backend, *, alice_older: bool = False):
    """A class of three learners plus bystanders; returns (backend, bystanders, carol's detached interface)."""
    apply(learner_config("alice"), backend, stream=io.StringIO())
    if alice_older:
        time.sleep(1.1)  # alice's lab is measurably older than the others (ages are whole seconds)
    apply(learner_config("bob", deletion_protection=True, key_pair=True), backend, stream=io.StringIO())
    apply(learner_config("carol"), backend, stream=io.StringIO())
    eni = detached_interface(backend, "carol")
    return backend, Bystanders(backend), eni


@pytest.fixture
def klass(strict_backend):
    return build_class(strict_backend)


@pytest.fixture
def aged_klass(strict_backend):
    """The class, with alice's lab begun a second before the others' (for ages and --older-than)."""
    return build_class(strict_backend, alice_older=True)


# ----- status -----


def test_status_groups_every_learner_with_state_age_and_cost(klass):
    backend, _, eni = klass
    result = class_status(backends=[backend])
    learners = result.learners
    assert set(zip(learners["lab"], learners["learner"], strict=True)) == {
        (LAB, "alice"),
        (LAB, "bob"),
        (LAB, "carol"),
        ("otherlab", "alice"),
    }
    rows = result.resources
    carol = rows[(rows["lab"] == LAB) & (rows["learner"] == "carol")]
    assert {"vpc", "cluster", "db-1", "instance", "network-interfaces"} <= set(carol["node"])
    assert eni in set(carol["id"])
    instance = carol[carol["node"] == "instance"].iloc[0]
    assert instance["state"] == "running" and instance["age"].endswith("s")
    assert instance["cost_per_hour"] > 0, "a running t3.micro with a public address costs money"
    writer = carol[carol["node"] == "db-1"].iloc[0]
    assert writer["cost_per_hour"] > 0
    assert carol[carol["node"] == "vpc"].iloc[0]["cost_per_hour"] == 0.0
    totals = result.totals
    assert totals["learners"] == 4 and totals["labs"] == 4 and totals["resources"] == len(rows)
    assert totals["cost_per_hour"] == pytest.approx(rows["cost_per_hour"].sum())
    assert "total: 4 learners" in str(result)
    assert json.loads(json.dumps(result.to_dict(), default=str))["totals"]["resources"] == len(rows)


def test_status_filters_by_lab_and_learner(klass):
    backend, _, _ = klass
    only_bob = class_status(lab=LAB, learners=["bob"], backends=[backend])
    assert set(only_bob.resources["learner"]) == {"bob"} and set(only_bob.resources["lab"]) == {LAB}
    assert "Key pair" in set(only_bob.resources["what"])
    with pytest.raises(ConfigError) as caught:
        class_status(lab="Not A Lab", backends=[backend])
    assert caught.value.field == "lab"


def test_a_learners_age_is_its_oldest_resource(aged_klass):
    backend, _, _ = aged_klass
    (region,) = scan([backend])
    created = {learner: region.created(LAB, learner) for learner in LEARNERS}
    assert created["alice"] < created["bob"] and created["alice"] < created["carol"]
    times = [s.created for s in region.of(LAB, "alice") if s.created]
    assert created["alice"] == min(times) and len(times) >= 3  # instance, cluster, writer, role, profile


# ----- reset: dry run -----


def test_dry_run_plans_every_deletion_in_order_says_what_it_leaves_and_deletes_nothing(klass):
    backend, bystanders, eni = klass
    before = {learner: lab_ids(backend, learner) for learner in LEARNERS}
    report = class_reset(lab=LAB, backends=[backend])
    assert report.dry_run and report.outcomes == [] and report.files == {}
    planned = report.plan_frame()
    for learner in LEARNERS:
        assert set(planned[planned["learner"] == learner]["id"]) == before[learner]
        assert lab_ids(backend, learner) == before[learner], "a dry run deletes nothing"
    wave = {(row.learner, row.node): row.wave for row in planned.itertuples()}
    for learner in LEARNERS:
        assert wave[(learner, "instance")] < wave[(learner, "sg-app")] < wave[(learner, "vpc")]
        assert wave[(learner, "db-1")] < wave[(learner, "cluster")] < wave[(learner, "db-subnet-group")]
    assert wave[("carol", "instance")] < wave[("carol", "network-interfaces")] < wave[("carol", "sg-app")]
    assert eni in set(planned["id"])
    untouched = report.untouched_frame()
    other = untouched[untouched["lab"] == "otherlab"]
    assert other["reason"].tolist() == [f"belongs to lab otherlab, not {LAB}"]
    not_tagged = untouched[untouched["reason"].str.startswith("not a lab resource")]
    assert {bystanders.vpc, bystanders.role} <= set(not_tagged["id"])
    assert "would delete, wave by wave" in report.table() and bystanders.vpc in report.table()
    bystanders.survived(backend)


def test_bad_input_is_refused_before_any_aws_call(strict_backend):
    calls: list[str] = []
    strict_backend.session().events.register("before-call", lambda event_name, **_: calls.append(event_name))
    for kwargs, field in [
        ({"older_than": "two hours"}, "older_than"),
        ({"older_than": -5}, "older_than"),
        ({"learners": ["Bob!"]}, "learner"),
        ({"lab": "lab--x"}, "lab"),
        ({"max_parallel": 0}, "max_parallel"),
    ]:
        with pytest.raises(ConfigError) as caught:
            class_reset(backends=[strict_backend], yes=True, **kwargs)
        assert caught.value.field == field and caught.value.fix
    with pytest.raises(ConfigError) as caught:
        class_reset(regions=["mars-north-1"], yes=True)
    assert caught.value.field == "region"
    assert calls == []


def test_parse_age():
    assert parse_age("2h") == timedelta(hours=2)
    assert parse_age("90m") == parse_age("1.5 hours") == timedelta(minutes=90)
    assert parse_age("1d") == timedelta(days=1) and parse_age(30) == timedelta(seconds=30)
    assert parse_age(None) is None


# ----- reset: for real -----


def test_reset_deletes_exactly_the_class_in_a_legal_order_and_reports_it(klass, tmp_path):
    backend, bystanders, eni = klass
    before = {learner: lab_ids(backend, learner) for learner in LEARNERS}
    out = io.StringIO()
    report = class_reset(lab=LAB, backends=[backend], yes=True, report_dir=tmp_path, stream=out, timing=FAST)
    assert report.ok, report.table()
    assert backend.strict.refusals == [], "AWS would have accepted every call: the order was legal"
    assert {o.id for o in report.deleted} == set().union(*before.values())
    for learner in LEARNERS:
        assert verify(LabConfig(lab=LAB, learner=learner), backend).empty
    assert (
        backend.client("ec2").describe_network_interfaces(Filters=[{"Name": "network-interface-id", "Values": [eni]}])[
            "NetworkInterfaces"
        ]
        == []
    )
    assert backend.client("rds").describe_db_clusters()["DBClusters"] == [], "bob's protection was turned off"
    assert backend.client("rds").describe_db_cluster_snapshots()["DBClusterSnapshots"] == [], "no final snapshot"
    bystanders.survived(backend)

    order = {(o.learner, o.node): o.order for o in report.deleted}
    for learner in LEARNERS:
        assert order[(learner, "instance")] < order[(learner, "sg-app")] < order[(learner, "vpc")]
    saved = json.loads(Path(report.files["json"]).read_text())
    assert {row["id"] for row in saved["outcomes"] if row["result"] == "deleted"} == set().union(*before.values())
    assert saved["dry_run"] is False and any(row["lab"] == "otherlab" for row in saved["not_touched"])
    table = Path(report.files["table"]).read_text()
    assert "deleted" in table and bystanders.vpc in table and "not touched:" in table
    assert f"{len(report.deleted)} deleted, 0 not deleted" in out.getvalue()


def test_reset_of_one_learner_leaves_the_others(klass, tmp_path):
    backend, bystanders, _ = klass
    others = {learner: lab_ids(backend, learner) for learner in ("alice", "carol")}
    bob = lab_ids(backend, "bob")
    report = class_reset(lab=LAB, learners=["bob"], backends=[backend], yes=True, report_dir=tmp_path, timing=FAST)
    assert report.ok and {o.id for o in report.deleted} == bob
    assert {learner: lab_ids(backend, learner) for learner in others} == others
    untouched = report.untouched_frame()
    assert set(untouched[untouched["reason"] == "learner not selected"]["learner"]) == {"alice", "carol"}
    assert backend.strict.refusals == []
    bystanders.survived(backend)


def test_older_than_resets_only_labs_begun_before_the_cutoff(aged_klass, tmp_path, monkeypatch):
    backend, _, _ = aged_klass
    (region,) = scan([backend])
    frozen = max(region.created(LAB, learner) for learner in LEARNERS) + timedelta(seconds=1)
    monkeypatch.setattr("labkit.classroom.reset.now", lambda: frozen)  # ages measured at one instant
    age = {learner: frozen - region.created(LAB, learner) for learner in LEARNERS}
    cutoff = (age["alice"] + max(age["bob"], age["carol"])) / 2
    alice = lab_ids(backend, "alice")
    report = class_reset(lab=LAB, backends=[backend], older_than=cutoff, yes=True, report_dir=tmp_path, timing=FAST)
    assert {o.id for o in report.deleted} == alice
    untouched = report.untouched_frame()
    young = untouched[untouched["reason"].str.contains("younger than")]
    assert set(young["learner"]) == {"bob", "carol"}
    assert lab_ids(backend, "bob") and lab_ids(backend, "carol")


def fail_call(backend, operation: str, key: str, value: str) -> Callable[[], None]:
    """Make every `operation` call on the resource named `value` fail as AWS could; returns the undo."""

    def refuse(params, **_):
        if params.get(key) == value:
            raise aws_error(operation, "InjectedFault", f"injected: {operation} {value} refused")

    service = "iam" if operation == "DeleteRole" else "rds"
    events = backend.client(service).meta.events  # a client keeps its own copy of the session's handlers
    events.register(f"before-parameter-build.{service}.{operation}", refuse)
    return lambda: events.unregister(f"before-parameter-build.{service}.{operation}", refuse)


def test_a_failure_on_one_resource_is_reported_and_the_rest_is_deleted(klass, tmp_path):
    backend, bystanders, _ = klass
    fail_call(backend, "DeleteRole", "RoleName", f"{LAB}-bob-iam-role")  # nothing waits for the role
    fail_call(backend, "DeleteDBCluster", "DBClusterIdentifier", f"{LAB}-alice-cluster")  # much waits for it
    before = {learner: lab_ids(backend, learner) for learner in LEARNERS}
    report = class_reset(lab=LAB, backends=[backend], yes=True, report_dir=tmp_path, timing=FAST)
    assert not report.ok
    outcomes = report.outcome_frame()
    failed = outcomes[outcomes["result"] == "failed"]
    assert set(zip(failed["learner"], failed["node"], strict=True)) == {("bob", "iam-role"), ("alice", "cluster")}
    assert all("InjectedFault" in reason for reason in failed["reason"])
    waiting = outcomes[outcomes["result"] == "not attempted"]
    assert set(waiting["learner"]) == {"alice"}
    assert {"db-subnet-group", "subnet-db-a", "sg-db", "vpc"} <= set(waiting["node"])
    assert set(waiting["reason"]) == {"waits for cluster, which failed"}
    assert lab_ids(backend, "carol") == set(), "another learner is reset in full"
    assert lab_ids(backend, "bob") == {f"{LAB}-bob-iam-role"}, "the rest of bob's lab is gone"
    alice_left = lab_ids(backend, "alice")
    assert alice_left == set(failed[failed["learner"] == "alice"]["id"]) | set(waiting["id"])
    assert alice_left < before["alice"] and f"{LAB}-alice-db-1" not in alice_left
    assert set(outcomes[outcomes["result"] == "deleted"]["id"]) == set().union(*before.values()) - alice_left - {
        f"{LAB}-bob-iam-role"
    }
    saved = json.loads(Path(report.files["json"]).read_text())
    assert any(row["result"] == "failed" and "InjectedFault" in row["reason"] for row in saved["outcomes"])
    bystanders.survived(backend)


def test_a_second_reset_finishes_the_job(klass, tmp_path):
    backend, _, _ = klass
    undo = fail_call(backend, "DeleteRole", "RoleName", f"{LAB}-carol-iam-role")
    first = class_reset(lab=LAB, learners=["carol"], backends=[backend], yes=True, report_dir=tmp_path, timing=FAST)
    assert [(o.node, o.result) for o in first.failed] == [("iam-role", "failed")]
    undo()
    second = class_reset(lab=LAB, learners=["carol"], backends=[backend], yes=True, report_dir=tmp_path, timing=FAST)
    assert second.ok and [o.id for o in second.deleted] == [f"{LAB}-carol-iam-role"]
    assert first.files["json"] != second.files["json"], "each reset keeps its own report"


def test_reset_of_an_empty_account_is_quiet(strict_backend, tmp_path):
    report = class_reset(lab=LAB, backends=[strict_backend], yes=True, report_dir=tmp_path)
    assert report.ok and report.planned == [] and report.outcomes == []
    assert "0 deleted, 0 not deleted" in report.summary()


# ----- quotas -----


def test_check_reads_quotas_from_the_best_source_and_counts_what_is_in_use(strict_backend):
    from labkit.classroom import class_check

    report = class_check(2, LabConfig(readers=1), strict_backend)
    lines = {line.resource: line for line in report.lines}
    vpcs = lines["VPCs per region"]
    assert vpcs.source == "Service Quotas (applied, vpc L-F678F1CE)" and vpcs.limit == 5
    assert (vpcs.per_lab, vpcs.needed, vpcs.in_use, vpcs.available) == (1, 2, 1, 4), "the default VPC counts"
    assert lines["Elastic IPs"].source == "EC2 DescribeAccountAttributes (vpc-max-elastic-ips)"
    assert lines["Elastic IPs"].needed == 0
    clusters = lines["Aurora DB clusters"]
    assert clusters.source.startswith("documented default") and clusters.limit == 40
    assert lines["DB instances"].needed == 4 and lines["On-Demand standard vCPUs"].per_lab == 2
    assert lines["On-Demand standard vCPUs"].source.startswith("documented default (assumed")
    assert report.ok and report.suggestions == []


def test_check_suggests_the_default_or_a_shared_vpc_when_vpcs_run_short(strict_backend):
    from labkit.classroom import class_check

    apply(learner_config("alice"), strict_backend, only="network", stream=io.StringIO())
    report = class_check(4, LabConfig(), strict_backend)
    assert not report.ok
    short = {line.resource for line in report.lines if not line.fits}
    assert {"VPCs per region", "On-Demand standard vCPUs"} <= short  # 2 VPCs (default + alice) of 5
    default_vpc = strict_backend.client("ec2").describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])
    advice = " ".join(report.suggestions)
    assert f"vpc = 'default' (every lab in the default VPC {default_vpc['Vpcs'][0]['VpcId']})" in advice
    assert "vpc = '<vpc-id>' (one VPC shared by the class)" in advice
    shared = class_check(4, LabConfig(vpc="default", instance_type="t3.nano"), strict_backend)
    vpc_lines = [line for line in shared.lines if "VPC" in line.resource or "gateways" in line.resource]
    assert all(line.fits and line.per_lab == 0 for line in vpc_lines)
    assert "does NOT fit" in str(report)


def test_the_no_reader_advice_counts_instances_per_lab_not_labs(strict_backend):
    """Issue 23: with 25 learners it said "25 per lab fewer"; readers = 0 saves one DB instance per lab."""
    from labkit.classroom import class_check

    report = class_check(25, LabConfig(readers=1), strict_backend)
    advice = next(s for s in report.suggestions if s.startswith("DB instances"))
    assert "Use readers = 0 (1 DB instance per lab fewer, 25 in all)" in advice and "25 per lab" not in advice


def test_check_refuses_a_bad_number_of_learners(strict_backend):
    from labkit.classroom import class_check

    for bad in (0, -3, "ten", 2.5, True):
        with pytest.raises(ConfigError) as caught:
            class_check(bad, LabConfig(), strict_backend)  # type: ignore[arg-type]
        assert caught.value.field == "learners"


class _Stubbed:
    """A backend whose service-quotas (and optionally rds) client is a botocore Stubber; others go to moto."""

    def __init__(self, backend, **stubbed) -> None:
        self.backend, self.stubbed, self.region, self.name = backend, stubbed, backend.region, backend.name

    def client(self, service: str):
        return self.stubbed.get(service) or self.backend.client(service)


def _stubbed_client(service: str):
    import boto3
    from botocore.stub import Stubber

    client = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x").client(service)
    return client, Stubber(client)


def test_check_uses_service_quotas_where_they_answer(strict_backend):
    from labkit.classroom import class_check
    from labkit.lab.quotas import QUOTAS

    client, stub = _stubbed_client("service-quotas")
    for index, quota in enumerate(QUOTAS):
        params = {"ServiceCode": quota.service, "QuotaCode": quota.code}
        if quota.code == "L-952B80B8":  # never raised: only the AWS default is there
            stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=params)
            stub.add_response("get_aws_default_service_quota", {"Quota": {"Value": 40.0}}, params)
        else:
            stub.add_response("get_service_quota", {"Quota": {"Value": 100.0 + index}}, params)
    with stub:
        report = class_check(10, LabConfig(), _Stubbed(strict_backend, **{"service-quotas": client}))
    stub.assert_no_pending_responses()
    sources = {line.resource: (line.limit, line.source) for line in report.lines}
    assert sources["VPCs per region"] == (100, "Service Quotas (applied, vpc L-F678F1CE)")
    assert sources["Aurora DB clusters"] == (40, "Service Quotas (AWS default, rds L-952B80B8)")
    assert sources["Elastic IPs"] == (105, "Service Quotas (applied, ec2 L-0263D0A3)")
    assert report.ok


def test_rds_account_attributes_stand_in_when_service_quotas_are_denied(strict_backend):
    from labkit.lab.quotas import QUOTAS, quota_limit

    quotas, quota_stub = _stubbed_client("service-quotas")
    rds, rds_stub = _stubbed_client("rds")
    quota_stub.add_client_error("get_service_quota", "AccessDeniedException")
    quota_stub.add_client_error("get_aws_default_service_quota", "AccessDeniedException")
    attributes = {"AccountQuotas": [{"AccountQuotaName": "DBClusters", "Used": 2, "Max": 22}]}
    rds_stub.add_response("describe_account_attributes", attributes, {})
    clusters = next(q for q in QUOTAS if q.code == "L-952B80B8")
    with quota_stub, rds_stub:
        limit = quota_limit(_Stubbed(strict_backend, **{"service-quotas": quotas, "rds": rds}), clusters)
    assert limit == (22, "RDS DescribeAccountAttributes")
