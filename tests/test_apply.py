"""apply(): creates the lab with safe defaults, tags everything, and never creates anything twice."""

from __future__ import annotations

import collections
import stat

import pytest

from labkit.apply import apply, destroy, status
from labkit.config import LabConfig
from labkit.plan import plan
from labkit.resources.compute import AMI_PARAMETER
from labkit.tags import TAG_LAB, TAG_LEARNER, TAG_NODE, tag_dict


@pytest.fixture
def lab(strict_backend):
    """A complete default lab, and its node -> id map."""
    config = LabConfig()
    return config, apply(config, strict_backend).ids


def rules_of(ec2, group_id: str) -> list[dict]:
    return ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]


def test_apply_prints_the_account_and_region_before_any_change(strict_backend, capsys):
    apply(LabConfig(), strict_backend)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "changes go to: backend=sandbox account=123456789012 region=us-east-1"


def test_the_database_security_group_admits_mysql_only_from_the_app_group(strict_backend, lab):
    _, ids = lab
    ec2 = strict_backend.client("ec2")
    inbound = [r for r in rules_of(ec2, ids["sg-db"]) if not r["IsEgress"]]
    assert len(inbound) == 1
    assert (inbound[0]["FromPort"], inbound[0]["ToPort"], inbound[0]["IpProtocol"]) == (3306, 3306, "tcp")
    assert inbound[0]["ReferencedGroupInfo"]["GroupId"] == ids["sg-app"]
    assert "CidrIpv4" not in inbound[0]
    assert not [r for r in rules_of(ec2, ids["sg-db"]) if r["IsEgress"]], "the database needs no outbound rule"


def test_the_app_group_has_no_inbound_rule_and_only_https_and_mysql_out(strict_backend, lab):
    _, ids = lab
    rules = rules_of(strict_backend.client("ec2"), ids["sg-app"])
    assert not [r for r in rules if not r["IsEgress"]]
    outbound = {
        (r["FromPort"], r.get("CidrIpv4") or r["ReferencedGroupInfo"]["GroupId"]) for r in rules if r["IsEgress"]
    }
    assert outbound == {(443, "0.0.0.0/0"), (3306, ids["sg-db"])}


def test_ssh_is_opened_only_when_asked_and_only_to_one_address(strict_backend):
    ids = apply(LabConfig(ssh_cidr="203.0.113.7"), strict_backend).ids
    inbound = [r for r in rules_of(strict_backend.client("ec2"), ids["sg-app"]) if not r["IsEgress"]]
    assert [(r["FromPort"], r["CidrIpv4"]) for r in inbound] == [(22, "203.0.113.7/32")]


def test_the_cluster_is_encrypted_private_backed_up_and_its_password_managed(strict_backend, lab):
    _, ids = lab
    rds = strict_backend.client("rds")
    cluster = rds.describe_db_clusters(DBClusterIdentifier=ids["cluster"])["DBClusters"][0]
    assert cluster["Engine"] == "aurora-mysql" and cluster["EngineVersion"] == "8.0.mysql_aurora.3.08.0"
    assert cluster["StorageEncrypted"] is True
    assert cluster["BackupRetentionPeriod"] == 1
    assert cluster["DeletionProtection"] is False
    assert cluster["MasterUserSecret"]["SecretArn"]
    assert [g["VpcSecurityGroupId"] for g in cluster["VpcSecurityGroups"]] == [ids["sg-db"]]
    members = {m["DBInstanceIdentifier"]: m["IsClusterWriter"] for m in cluster["DBClusterMembers"]}
    assert members == {ids["db-writer"]: True, ids["db-reader-1"]: False}
    for instance in rds.describe_db_instances()["DBInstances"]:
        assert instance["PubliclyAccessible"] is False
        assert instance["DBInstanceClass"] == "db.t4g.medium"


def test_the_instance_has_imdsv2_the_ssm_role_a_public_address_and_the_current_ami(strict_backend, lab):
    _, ids = lab
    ec2 = strict_backend.client("ec2")
    instance = ec2.describe_instances(InstanceIds=[ids["instance"]])["Reservations"][0]["Instances"][0]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["IamInstanceProfile"]["Arn"].endswith("/auroralab-learner1-instance-profile")
    assert instance["SubnetId"] == ids["subnet-public"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [ids["sg-app"]]
    assert instance.get("PublicIpAddress")
    assert "KeyName" not in instance
    ami = strict_backend.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    assert instance["ImageId"] == ami
    iam = strict_backend.client("iam")
    attached = iam.list_attached_role_policies(RoleName=ids["iam-role"])["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]


def test_the_public_subnet_routes_out_through_the_internet_gateway(strict_backend, lab):
    _, ids = lab
    ec2 = strict_backend.client("ec2")
    table = ec2.describe_route_tables(RouteTableIds=[ids["route-table-public"]])["RouteTables"][0]
    assert {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": ids["internet-gateway"]}.items() <= next(
        r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"
    ).items()
    assert [a["SubnetId"] for a in table["Associations"] if not a.get("Main")] == [ids["subnet-public"]]
    assert ec2.describe_vpc_attribute(VpcId=ids["vpc"], Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    zones = {
        s["AvailabilityZone"]
        for s in ec2.describe_subnets(SubnetIds=[ids["subnet-db-a"], ids["subnet-db-b"]])["Subnets"]
    }
    assert len(zones) == 2


def test_every_resource_carries_the_lab_learner_and_node_tags(strict_backend, lab):
    config, _ = lab
    everything = status(config, strict_backend)
    assert len(everything) >= 15
    ec2 = strict_backend.client("ec2")
    for vpc in ec2.describe_vpcs(Filters=[{"Name": "tag:labkit:lab", "Values": ["auroralab"]}])["Vpcs"]:
        tags = tag_dict(vpc["Tags"])
        assert (tags[TAG_LAB], tags[TAG_LEARNER], tags[TAG_NODE], tags["Name"]) == (
            "auroralab",
            "learner1",
            "vpc",
            "auroralab-learner1-vpc",
        )


def test_apply_three_times_gives_the_same_ids_and_no_duplicates(strict_backend):
    config = LabConfig(readers=2, key_pair=True)
    runs = [apply(config, strict_backend) for _ in range(3)]
    assert runs[0].ids == runs[1].ids == runs[2].ids
    assert len(runs[0].created) == 17 and runs[1].created == runs[2].created == []
    per_node = collections.Counter(status(config, strict_backend).query("what != 'EBS volume'")["node"])
    duplicated = {node: count for node, count in per_node.items() if count > 1 and node != "cluster"}
    assert duplicated == {}
    assert plan(config, strict_backend).nothing_to_do


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
