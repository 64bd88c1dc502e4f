"""The strict layer itself: it must refuse the orders AWS refuses, and stay quiet on the right ones."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from support.clusters import ENGINE, cluster_params
from support.strict import StrictViolation

from labkit.aws.tags import lab_tags

TAGS = lab_tags("strict", "tester", "x")
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def spec(kind: str) -> list[dict]:
    return [{"ResourceType": kind, "Tags": TAGS}]


def refused(code: str, call, **params) -> None:
    with pytest.raises(ClientError) as caught:
        call(**params)
    assert caught.value.response["Error"]["Code"] == code


@pytest.fixture
def ec2(strict_backend):
    return strict_backend.client("ec2")


@pytest.fixture
def rds(strict_backend):
    return strict_backend.client("rds")


@pytest.fixture
def network(ec2):
    """A VPC with two subnets in two zones and two security groups."""
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=spec("vpc"))["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=zone, TagSpecifications=spec("subnet")
        )["Subnet"]["SubnetId"]
        for i, zone in enumerate(["us-east-1a", "us-east-1b"])
    ]
    groups = [
        ec2.create_security_group(
            GroupName=name, Description=name, VpcId=vpc, TagSpecifications=spec("security-group")
        )["GroupId"]
        for name in ("app", "db")
    ]
    return {"vpc": vpc, "subnets": subnets, "app": groups[0], "db": groups[1]}


def allow_mysql_from(ec2, group: str, source: str) -> str:
    reply = ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "UserIdGroupPairs": [{"GroupId": source}]}
        ],
    )
    return reply["SecurityGroupRules"][0]["SecurityGroupRuleId"]


def make_cluster(rds, network, identifier: str = "strict-cluster", **extra) -> None:
    if not rds.describe_db_subnet_groups()["DBSubnetGroups"]:
        rds.create_db_subnet_group(
            DBSubnetGroupName="strict-subnets", DBSubnetGroupDescription="d", SubnetIds=network["subnets"], Tags=TAGS
        )
    params = cluster_params(
        identifier, DBSubnetGroupName="strict-subnets", VpcSecurityGroupIds=[network["db"]], Tags=TAGS
    )
    rds.create_db_cluster(**{**params, **extra})


def run_instance(strict_backend, network) -> str:
    ami = strict_backend.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    return strict_backend.client("ec2").run_instances(
        ImageId=ami,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        SubnetId=network["subnets"][0],
        SecurityGroupIds=[network["app"]],
        TagSpecifications=spec("instance"),
    )["Instances"][0]["InstanceId"]


# ----- security groups -----


def test_a_group_referenced_by_another_groups_rule_cannot_be_deleted_until_the_rule_goes(ec2, network):
    rule = allow_mysql_from(ec2, network["db"], network["app"])
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network["app"])
    ec2.revoke_security_group_ingress(GroupId=network["db"], SecurityGroupRuleIds=[rule])
    ec2.delete_security_group(GroupId=network["app"])


def test_an_egress_reference_blocks_deletion_too(ec2, network):
    ec2.authorize_security_group_egress(
        GroupId=network["app"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "UserIdGroupPairs": [{"GroupId": network["db"]}]}
        ],
    )
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network["db"])


def test_a_group_used_by_a_live_instance_cannot_be_deleted(strict_backend, ec2, network):
    instance = run_instance(strict_backend, network)
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network["app"])
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.delete_security_group(GroupId=network["app"])


def test_a_group_used_by_a_cluster_cannot_be_deleted(ec2, rds, network):
    make_cluster(rds, network)
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network["db"])
    rds.delete_db_cluster(DBClusterIdentifier="strict-cluster", SkipFinalSnapshot=True)
    ec2.delete_security_group(GroupId=network["db"])


def test_the_default_group_of_a_vpc_cannot_be_deleted(ec2, network):
    default = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [network["vpc"]]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]["GroupId"]
    refused("CannotDelete", ec2.delete_security_group, GroupId=default)


def test_an_instance_shutting_down_can_hold_its_group_for_a_while(strict_backend, ec2, network):
    strict_backend.strict.linger_after_terminate = 2
    ec2.terminate_instances(InstanceIds=[run_instance(strict_backend, network)])
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network["app"])
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network["app"])
    ec2.delete_security_group(GroupId=network["app"])


# ----- subnets and gateways -----


def test_a_subnet_with_a_live_instance_cannot_be_deleted(strict_backend, ec2, network):
    run_instance(strict_backend, network)
    refused("DependencyViolation", ec2.delete_subnet, SubnetId=network["subnets"][0])
    ec2.delete_subnet(SubnetId=network["subnets"][1])


def test_a_gateway_cannot_be_detached_while_an_instance_has_a_public_address(strict_backend, ec2, network):
    gateway = ec2.create_internet_gateway(TagSpecifications=spec("internet-gateway"))["InternetGateway"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=network["vpc"])
    ec2.modify_subnet_attribute(SubnetId=network["subnets"][0], MapPublicIpOnLaunch={"Value": True})
    instance = run_instance(strict_backend, network)
    refused(
        "DependencyViolation",
        ec2.detach_internet_gateway,
        InternetGatewayId=gateway["InternetGatewayId"],
        VpcId=network["vpc"],
    )
    refused("DependencyViolation", ec2.delete_internet_gateway, InternetGatewayId=gateway["InternetGatewayId"])
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=network["vpc"])
    ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])


# ----- RDS -----


def test_a_subnet_group_in_use_cannot_be_deleted(rds, network):
    make_cluster(rds, network)
    refused("InvalidDBSubnetGroupStateFault", rds.delete_db_subnet_group, DBSubnetGroupName="strict-subnets")
    rds.delete_db_cluster(DBClusterIdentifier="strict-cluster", SkipFinalSnapshot=True)
    rds.delete_db_subnet_group(DBSubnetGroupName="strict-subnets")


def test_a_second_cluster_with_the_same_identifier_is_refused_not_overwritten(rds, network):
    make_cluster(rds, network)
    refused("DBClusterAlreadyExistsFault", make_cluster, rds=rds, network=network)
    refused("DBSubnetGroupAlreadyExists", rds.create_db_subnet_group, DBSubnetGroupName="strict-subnets",
            DBSubnetGroupDescription="d", SubnetIds=network["subnets"], Tags=TAGS)  # fmt: skip


def test_identifiers_breaking_rds_rules_are_refused(rds, network):
    for identifier in ["1cluster", "my--cluster", "cluster-", "my_cluster", "c" * 64]:
        refused("InvalidParameterValue", make_cluster, rds=rds, network=network, identifier=identifier)


def test_master_passwords_breaking_rds_rules_are_refused(rds, network):
    for password in ["short", "has@sign1", "has/slash1", 'has"quote1', "has space1", "x" * 42]:
        refused(
            "InvalidParameterValue", make_cluster, rds=rds, network=network, ManageMasterUserPassword=False,
            MasterUserPassword=password,
        )  # fmt: skip


def test_good_identifiers_and_passwords_pass(rds, network):
    make_cluster(rds, network, identifier="lab-1", ManageMasterUserPassword=False, MasterUserPassword="Good-pass_123")
    assert rds.describe_db_clusters(DBClusterIdentifier="lab-1")["DBClusters"]


def test_a_cluster_needs_an_existing_subnet_group_and_a_known_version(rds, network):
    refused("DBSubnetGroupNotFoundFault", rds.create_db_cluster, DBClusterIdentifier="c1", Engine=ENGINE.name,
            MasterUsername="admin", ManageMasterUserPassword=True, DBSubnetGroupName="nope", Tags=TAGS)  # fmt: skip
    refused("InvalidParameterCombination", make_cluster, rds=rds, network=network, EngineVersion="5.7.12")


def test_a_subnet_group_must_span_two_zones(rds, network):
    refused("DBSubnetGroupDoesNotCoverEnoughAZs", rds.create_db_subnet_group, DBSubnetGroupName="one-zone",
            DBSubnetGroupDescription="d", SubnetIds=network["subnets"][:1], Tags=TAGS)  # fmt: skip


def test_instances_need_their_cluster_an_offered_class_and_a_free_identifier(rds, network):
    make_cluster(rds, network)
    params = {"DBClusterIdentifier": "strict-cluster", "Engine": ENGINE.name, "Tags": TAGS}
    refused(
        "InvalidParameterCombination",
        rds.create_db_instance,
        DBInstanceIdentifier="w",
        DBInstanceClass="db.t3.small",
        **params,
    )
    refused("DBClusterNotFoundFault", rds.create_db_instance, DBInstanceIdentifier="w", DBInstanceClass="db.t4g.medium",
            **{**params, "DBClusterIdentifier": "nope"})  # fmt: skip
    rds.create_db_instance(DBInstanceIdentifier="w", DBInstanceClass="db.t4g.medium", **params)
    refused(
        "DBInstanceAlreadyExists",
        rds.create_db_instance,
        DBInstanceIdentifier="w",
        DBInstanceClass="db.t4g.medium",
        **params,
    )


def test_a_protected_cluster_and_a_delete_without_snapshot_choice_are_refused(rds, network):
    make_cluster(rds, network, DeletionProtection=True)
    refused(
        "InvalidParameterCombination",
        rds.delete_db_cluster,
        DBClusterIdentifier="strict-cluster",
        SkipFinalSnapshot=True,
    )
    rds.modify_db_cluster(DBClusterIdentifier="strict-cluster", DeletionProtection=False, ApplyImmediately=True)
    refused("InvalidParameterCombination", rds.delete_db_cluster, DBClusterIdentifier="strict-cluster")
    rds.delete_db_cluster(DBClusterIdentifier="strict-cluster", SkipFinalSnapshot=True)


# ----- IAM and the lab's own rule -----


def test_a_role_still_in_an_instance_profile_cannot_be_deleted(strict_backend):
    iam = strict_backend.client("iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}", Tags=TAGS)
    iam.create_instance_profile(InstanceProfileName="p", Tags=TAGS)
    iam.add_role_to_instance_profile(InstanceProfileName="p", RoleName="r")
    refused("DeleteConflict", iam.delete_role, RoleName="r")
    iam.remove_role_from_instance_profile(InstanceProfileName="p", RoleName="r")
    iam.delete_role(RoleName="r")


def test_a_create_call_without_the_lab_tags_is_a_violation(ec2):
    with pytest.raises(StrictViolation, match="CreateVpc without the lab tags"):
        ec2.create_vpc(CidrBlock="10.8.0.0/16")
    with pytest.raises(StrictViolation):
        ec2.create_vpc(CidrBlock="10.8.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": TAGS[:1]}])


def test_refusals_are_recorded(strict_backend, ec2, network):
    allow_mysql_from(ec2, network["db"], network["app"])
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network["app"])
    assert strict_backend.strict.refusals == [("DeleteSecurityGroup", "DependencyViolation")]


def test_instance_profiles_are_listed_under_the_path_prefix_only(strict_backend):
    iam = strict_backend.client("iam")
    for learner in ("alice", "carol"):
        iam.create_instance_profile(
            InstanceProfileName=f"lab-{learner}-profile",
            Path=f"/labkit/lab/{learner}/",
            Tags=lab_tags("lab", learner, "p"),
        )
    listed = iam.list_instance_profiles(PathPrefix="/labkit/lab/carol/")["InstanceProfiles"]
    assert [p["InstanceProfileName"] for p in listed] == ["lab-carol-profile"]
    assert len(iam.list_instance_profiles()["InstanceProfiles"]) >= 2


def test_an_iam_resource_deleted_between_listing_and_reading_its_tags_is_gone_not_an_error(strict_backend):
    from labkit.lab.resources.iam import InstanceProfile, Role

    iam = strict_backend.client("iam")
    tags = lab_tags("lab", "dave", "p")
    profile = iam.create_instance_profile(InstanceProfileName="lab-dave-profile", Path="/labkit/lab/dave/", Tags=tags)
    role = iam.create_role(RoleName="lab-dave-role", Path="/labkit/lab/dave/", AssumeRolePolicyDocument="{}", Tags=tags)
    iam.delete_instance_profile(InstanceProfileName="lab-dave-profile")  # another reset got there first
    iam.delete_role(RoleName="lab-dave-role")
    assert InstanceProfile.tags_of(iam, profile["InstanceProfile"]) is None
    assert Role.tags_of(iam, role["Role"]) is None


# ----- issue 25, item 15: what the strict layer lacked -----


def test_a_cluster_with_instances_left_cannot_be_deleted(strict_backend, rds, network):
    make_cluster(rds, network)
    rds.create_db_instance(DBInstanceIdentifier="w", DBInstanceClass="db.t4g.medium", DBClusterIdentifier="strict-cluster",
                           Engine=ENGINE.name, Tags=TAGS)  # fmt: skip
    refused(
        "InvalidDBClusterStateFault",
        rds.delete_db_cluster,
        DBClusterIdentifier="strict-cluster",
        SkipFinalSnapshot=True,
    )
    assert ("DeleteDBCluster", "InvalidDBClusterStateFault") in strict_backend.strict.refusals, (
        "the layer's, not moto's"
    )
    rds.delete_db_instance(DBInstanceIdentifier="w")
    rds.delete_db_cluster(DBClusterIdentifier="strict-cluster", SkipFinalSnapshot=True)


def test_a_role_with_policies_cannot_be_deleted(strict_backend):
    iam = strict_backend.client("iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}", Tags=TAGS)
    iam.attach_role_policy(RoleName="r", PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    allow = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}'
    iam.put_role_policy(RoleName="r", PolicyName="inline", PolicyDocument=allow)
    refused("DeleteConflict", iam.delete_role, RoleName="r")
    iam.detach_role_policy(RoleName="r", PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    refused("DeleteConflict", iam.delete_role, RoleName="r")
    iam.delete_role_policy(RoleName="r", PolicyName="inline")
    iam.delete_role(RoleName="r")
    assert [code for op, code in strict_backend.strict.refusals if op == "DeleteRole"] == ["DeleteConflict"] * 2


def test_a_subnet_with_a_network_interface_cannot_be_deleted(ec2, network):
    interface = ec2.create_network_interface(SubnetId=network["subnets"][0], Groups=[network["app"]],
                                             TagSpecifications=spec("network-interface"))  # fmt: skip
    refused("DependencyViolation", ec2.delete_subnet, SubnetId=network["subnets"][0])
    ec2.delete_network_interface(NetworkInterfaceId=interface["NetworkInterface"]["NetworkInterfaceId"])
    ec2.delete_subnet(SubnetId=network["subnets"][0])


def test_a_new_instance_profile_is_refused_until_iam_propagates_it(strict_backend, network):
    iam = strict_backend.client("iam")
    strict_backend.strict.profile_lag = 2
    iam.create_instance_profile(InstanceProfileName="p", Tags=TAGS)
    ami = strict_backend.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    launch = {"ImageId": ami, "InstanceType": "t3.micro", "MinCount": 1, "MaxCount": 1, "SubnetId": network["subnets"][0],
              "IamInstanceProfile": {"Name": "p"}, "TagSpecifications": spec("instance")}  # fmt: skip
    ec2 = strict_backend.client("ec2")
    refused("InvalidParameterValue", ec2.run_instances, **launch)
    refused("InvalidParameterValue", ec2.run_instances, **launch)
    assert ec2.run_instances(**launch)["Instances"]


# labkit's clients: retries={"mode": "standard", "max_attempts": 5}, which botocore counts as 5 retries, 6 attempts
ALL_ATTEMPTS = 6


@pytest.fixture
def no_backoff(monkeypatch):
    """botocore's retries without their pauses (standard mode waits up to 20 s between attempts)."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


def test_throttled_attempts_are_aws_errors_botocore_retries(strict_backend, no_backoff, ec2):
    throttle = strict_backend.strict.throttle
    throttle.next("DescribeVpcs", 2)
    assert ec2.describe_vpcs()["Vpcs"], "two throttled attempts, then the third answers"
    assert throttle.refused == {"DescribeVpcs": 2}
    throttle.next("DescribeDBClusters", ALL_ATTEMPTS)  # every attempt of one call
    refused("Throttling", strict_backend.client("rds").describe_db_clusters)
    throttle.next("DescribeInstanceInformation", ALL_ATTEMPTS)
    refused("ThrottlingException", strict_backend.client("ssm").describe_instance_information)


def test_a_throttled_create_is_not_carried_out(strict_backend, no_backoff, ec2):
    """A throttled attempt reaches nothing: the retry makes one VPC, not two."""
    before = len(ec2.describe_vpcs()["Vpcs"])
    strict_backend.strict.throttle.next("CreateVpc", 2)
    ec2.create_vpc(CidrBlock="10.5.0.0/16", TagSpecifications=spec("vpc"))
    assert len(ec2.describe_vpcs()["Vpcs"]) == before + 1


# ----- and labkit copes with them -----


def _arm(backend, after: str, operation: str, attempts: int) -> None:
    """Throttle every attempt of the next `operation` call once `after` (service.Operation) has answered."""
    service, name = after.split(".")
    backend.client(service).meta.events.register(
        f"after-call.{service}.{name}", lambda **_: backend.strict.throttle.next(operation, attempts)
    )


def test_a_lab_is_built_and_destroyed_while_aws_is_slow_and_throttles(strict_backend, no_backoff):
    """What a class account does to a lab at once: a new instance profile EC2 does not see yet, a wait whose poll
    AWS throttles past botocore's own retries, a delete throttled as long, and the subnets Aurora's network
    interfaces keep busy after the cluster is gone. apply and destroy get through all of it."""
    import io

    from labkit.config import LabConfig
    from labkit.lab.apply import apply
    from labkit.lab.destroy import destroy
    from labkit.lab.inventory import verify

    strict = strict_backend.strict
    strict.profile_lag, strict.linger_after_cluster = 2, 2
    _arm(strict_backend, "rds.CreateDBInstance", "DescribeDBInstances", ALL_ATTEMPTS)  # the waiter's first poll
    _arm(strict_backend, "rds.DeleteDBCluster", "DeleteDBSubnetGroup", ALL_ATTEMPTS)
    config = LabConfig(readers=0)
    apply(config, strict_backend, stream=io.StringIO())
    destroy(config, strict_backend, stream=io.StringIO())
    assert len(verify(config, strict_backend)) == 0
    refusals = strict.refusals
    assert refusals.count(("RunInstances", "InvalidParameterValue")) == 2
    assert refusals.count(("DescribeDBInstances", "Throttling")) == ALL_ATTEMPTS
    assert refusals.count(("DeleteDBSubnetGroup", "Throttling")) == ALL_ATTEMPTS
    assert refusals.count(("DeleteSubnet", "DependencyViolation")) >= 2
