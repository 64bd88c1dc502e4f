"""apply(): the lab it builds has safe defaults and tags everywhere (checked on one shared lab, read-only)."""

from __future__ import annotations

import io

import pytest
from support.backends import strict_moto_backend
from support.clusters import ENGINE
from support.strict import CATALOG_DEFAULT

from labkit.aws.tags import TAG_LAB, TAG_LEARNER, TAG_NODE, tag_dict
from labkit.config import LabConfig
from labkit.lab.apply import apply
from labkit.lab.destroy import destroy
from labkit.lab.inventory import status
from labkit.lab.resources.compute import AMI_PARAMETER


@pytest.fixture(scope="module")
def shared(fast_moto, tmp_path_factory):
    """One default lab, built once for this module's read-only checks: (backend, config, ids, apply output)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABKIT_HOME", str(tmp_path_factory.mktemp("labkit-home")))
        with strict_moto_backend() as backend:
            config, output = LabConfig(), io.StringIO()
            ids = apply(config, backend, stream=output).ids
            yield backend, config, ids, output.getvalue()


@pytest.fixture
def lab(shared):
    _, config, ids, _ = shared
    return config, ids


@pytest.fixture
def strict_backend(shared):
    """Here, the shared lab's backend (the tests below only read)."""
    return shared[0]


def rules_of(ec2, group_id: str) -> list[dict]:
    return ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]


def test_apply_prints_the_account_and_region_before_any_change(shared):
    output = shared[3]
    assert output.splitlines()[0] == "changes go to: backend=sandbox account=123456789012 region=us-east-1"


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


def test_the_cluster_is_encrypted_private_backed_up_and_its_password_managed(strict_backend, lab):
    _, ids = lab
    rds = strict_backend.client("rds")
    cluster = rds.describe_db_clusters(DBClusterIdentifier=ids["cluster"])["DBClusters"][0]
    assert cluster["Engine"] == ENGINE.name and cluster["EngineVersion"] == CATALOG_DEFAULT  # resolved at plan
    assert cluster["StorageEncrypted"] is True
    assert cluster["BackupRetentionPeriod"] == 1
    assert cluster["DeletionProtection"] is False
    assert cluster["MasterUserSecret"]["SecretArn"]
    assert [g["VpcSecurityGroupId"] for g in cluster["VpcSecurityGroups"]] == [ids["sg-db"]]
    members = {m["DBInstanceIdentifier"]: m["IsClusterWriter"] for m in cluster["DBClusterMembers"]}
    assert members == {ids["db-1"]: True, ids["db-2"]: False}
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


def test_quiet_apply_and_destroy_print_nothing(strict_backend, capsys):
    config = LabConfig(learner="quiet")
    result = apply(config, strict_backend, only="network", quiet=True)
    assert result.created and capsys.readouterr().out == ""
    assert destroy(config, strict_backend, quiet=True).empty and capsys.readouterr().out == ""
