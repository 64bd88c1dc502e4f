"""apply() again and again: the same ids, nothing twice; options (SSH, key pair, protection, default VPC)."""

from __future__ import annotations

import collections
import io
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from labkit.config import LabConfig
from labkit.display import Progress
from labkit.lab.apply import apply
from labkit.lab.destroy import destroy
from labkit.lab.inventory import status
from labkit.lab.plan import plan


def rules_of(ec2, group_id: str) -> list[dict]:
    return ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]


def test_ssh_is_opened_only_when_asked_and_only_to_one_address(strict_backend):
    ids = apply(LabConfig(ssh_cidr="203.0.113.7"), strict_backend).ids
    inbound = [r for r in rules_of(strict_backend.client("ec2"), ids["sg-app"]) if not r["IsEgress"]]
    assert [(r["FromPort"], r["CidrIpv4"]) for r in inbound] == [(22, "203.0.113.7/32")]


def test_apply_three_times_gives_the_same_ids_and_no_duplicates(strict_backend):
    config = LabConfig(readers=2, key_pair=True)
    runs = [apply(config, strict_backend) for _ in range(3)]
    assert runs[0].ids == runs[1].ids == runs[2].ids
    assert len(runs[0].created) == 18 and runs[1].created == runs[2].created == []
    everything = status(config, strict_backend)
    per_node = collections.Counter(zip(everything["what"], everything["node"], strict=True))
    assert max(per_node.values()) == 1
    after = plan(config, strict_backend)
    assert after.nothing_to_do and after.duplicates == {}


def test_the_private_key_is_saved_0600_in_the_labkit_home_and_never_printed(strict_backend, lab_home, capsys):
    ids = apply(LabConfig(key_pair=True), strict_backend).ids
    key_file = lab_home / "keys" / "auroralab-learner1-key-pair.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    material = key_file.read_text()
    assert "PRIVATE KEY" in material
    out = capsys.readouterr()
    assert material.strip().splitlines()[1] not in out.out + out.err
    instance = strict_backend.client("ec2").describe_instances(InstanceIds=[ids["instance"]])
    assert instance["Reservations"][0]["Instances"][0]["KeyName"] == "auroralab-learner1-key-pair"
    destroy(LabConfig(key_pair=True), strict_backend)
    assert not key_file.exists()


def test_a_lost_private_key_is_replaced_while_no_instance_uses_it(strict_backend, lab_home):
    config = LabConfig(key_pair=True)
    first = apply(config, strict_backend).ids["key-pair"]
    strict_backend.client("ec2").terminate_instances(InstanceIds=[apply(config, strict_backend).ids["instance"]])
    (lab_home / "keys" / f"{first}.pem").unlink()
    assert plan(config, strict_backend).step("key-pair").action == "complete"
    result = apply(config, strict_backend)
    assert "key-pair" in result.completed and "instance" in result.created
    assert (lab_home / "keys" / f"{first}.pem").exists()


def test_deletion_protection_is_set_and_destroy_still_removes_the_cluster(strict_backend):
    config = LabConfig(deletion_protection=True)
    ids = apply(config, strict_backend).ids
    rds = strict_backend.client("rds")
    assert rds.describe_db_clusters(DBClusterIdentifier=ids["cluster"])["DBClusters"][0]["DeletionProtection"] is True
    assert destroy(config, strict_backend).empty
    assert strict_backend.strict.refusals == []


def test_a_lab_in_the_default_vpc_creates_no_network_and_leaves_it_in_place(strict_backend):
    ec2 = strict_backend.client("ec2")
    vpcs_before = ec2.describe_vpcs()["Vpcs"]
    subnets_before = {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    config = LabConfig(vpc="default")
    result = apply(config, strict_backend)
    assert not {"vpc", "internet-gateway", "route-table-public"} & set(result.created)
    assert result.ids["vpc"] == vpcs_before[0]["VpcId"]
    assert result.ids["subnet-db-a"] in subnets_before
    assert destroy(config, strict_backend).empty
    assert ec2.describe_vpcs()["Vpcs"] == vpcs_before
    assert {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]} == subnets_before


def test_apply_can_build_one_stage_at_a_time_for_the_notebooks(strict_backend):
    config = LabConfig()
    network = apply(config, strict_backend, only="network")
    assert set(network.created) == {"vpc", "internet-gateway", "subnet-public", "subnet-db-a", "subnet-db-b"} | {
        "route-table-public",
        "sg-app",
        "sg-db",
    }
    compute = apply(config, strict_backend, only="compute")
    assert set(compute.created) == {"iam-role", "instance-profile", "instance"}
    remaining = plan(config, strict_backend)
    assert {s.node for s in remaining.changes} == {"db-subnet-group", "cluster-parameters", "cluster", "db-1", "db-2"}


class InterruptAt(Progress):
    """Progress that raises KeyboardInterrupt (the notebook's stop button) when a node starts."""

    def __init__(self, node: str) -> None:
        super().__init__("interrupt", 0)
        self.node = node

    def started(self, node: str, action: str) -> None:
        if node == self.node:
            raise KeyboardInterrupt


def test_an_interrupted_apply_returns_at_once_and_a_rerun_resumes_without_duplicates(strict_backend):
    config = LabConfig()
    with pytest.raises(KeyboardInterrupt):
        apply(config, strict_backend, progress=InterruptAt("cluster"))
    middle = plan(config, strict_backend)
    assert middle.step("vpc").action == "none" and middle.step("cluster").action == "create"
    result = apply(config, strict_backend)
    assert "cluster" in result.created and "vpc" not in result.created
    after = plan(config, strict_backend)
    assert after.nothing_to_do and after.duplicates == {}


def test_a_lab_in_an_existing_vpc_uses_its_subnets_and_never_deletes_them(strict_backend):
    ec2 = strict_backend.client("ec2")
    strict_backend.strict.require_tags = False  # the classroom's own VPC, made without lab tags
    vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.60.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for i, zone in enumerate(["us-east-1b", "us-east-1a", "us-east-1a"])
    ]
    ec2.modify_subnet_attribute(SubnetId=subnets[2], MapPublicIpOnLaunch={"Value": True})
    strict_backend.strict.require_tags = True
    config = LabConfig(vpc=vpc)
    ids = apply(config, strict_backend).ids
    assert ids["vpc"] == vpc
    assert ids["subnet-public"] == subnets[2], "the subnet that gives public addresses hosts the instance"
    database = ec2.describe_subnets(SubnetIds=[ids["subnet-db-a"], ids["subnet-db-b"]])["Subnets"]
    assert {s["VpcId"] for s in database} == {vpc} and len({s["AvailabilityZone"] for s in database}) == 2
    assert destroy(config, strict_backend).empty
    assert ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]
    assert len(ec2.describe_subnets(SubnetIds=subnets)["Subnets"]) == 3


class _Signal(io.StringIO):
    """A progress stream that sets `event` once a caller writes that it waits for another apply."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def write(self, text: str) -> int:
        if "waiting for it to finish" in text:
            self.event.set()
        return super().write(text)


def test_two_concurrent_applies_of_one_lab_create_each_resource_once(strict_backend, monkeypatch):
    """The first apply to read the account waits, after reading, until the second has either read it too (no lock:
    both find everything missing, the race a learner hit) or says it waits its turn (then it reads after)."""
    import labkit.lab.apply as apply_module

    config, other_arrived, reads, count = LabConfig(), threading.Event(), [], threading.Lock()
    real_read_plan = apply_module.read_plan

    def read_plan(ctx, graph):
        result = real_read_plan(ctx, graph)
        with count:
            reads.append(threading.get_ident())
            first = len(reads) == 1
        if first:
            assert other_arrived.wait(timeout=60), "the second apply neither read the account nor waited"
        else:
            other_arrived.set()
        return result

    monkeypatch.setattr(apply_module, "read_plan", read_plan)
    streams = [_Signal(other_arrived), _Signal(other_arrived)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [f.result() for f in [pool.submit(apply, config, strict_backend, stream=s) for s in streams]]
    assert sorted(len(r.created) for r in results) == [0, len(results[0].ids)]
    assert results[0].ids == results[1].ids
    assert sum("waiting for it to finish" in s.getvalue() for s in streams) == 1
    everything = status(config, strict_backend)
    per_node = collections.Counter(zip(everything["what"], everything["node"], strict=True))
    assert max(per_node.values()) == 1
    assert plan(config, strict_backend).duplicates == {}
    assert strict_backend.strict.refusals == []
