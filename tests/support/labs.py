"""A lab-shaped account built with plain boto3 calls for the security tests, and a check of its shape.

`build_lab()` makes what the default lab makes: a VPC, a public subnet routed to an internet gateway, two
private DB subnets, an app group with no inbound rule, a db group that allows 3306 from the app group by
reference, a DB subnet group, an encrypted private Aurora cluster with a writer and a reader, and an EC2
instance with IMDSv2 required, all tagged like `tags.lab_tags()`.

Each test builds its own lab under its own learner name inside one module-wide moto, which is much faster
than a fresh moto per test and keeps tests independent (every lookup is by lab and learner tags).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from support.backends import InProcessBackend
from support.clusters import cluster_params, instance_params

from labkit.aws.backend import Backend
from labkit.aws.tags import (
    NODE_CLUSTER,
    NODE_DB_SUBNET_GROUP,
    NODE_DB_SUBNETS,
    NODE_FIRST_DB,
    NODE_INSTANCE,
    NODE_INTERNET_GATEWAY,
    NODE_PUBLIC_SUBNET,
    NODE_ROUTE_TABLE,
    NODE_SG_APP,
    NODE_SG_DB,
    NODE_VPC,
    db_instance_node,
    lab_tags,
    resource_name,
)

LAB = "seclab"
MOTO_AMI = "ami-12c6146b"  # one of moto's bundled AMIs (AMI validation is on in conftest)
_learners = itertools.count(1)


@dataclass
class Config:
    """The duck-typed config the security functions accept: lab, learner, region."""

    lab: str = LAB
    learner: str = "learner1"
    region: str = "us-east-1"
    backend: str = "sandbox"


@dataclass
class Lab:
    """The ids of one built lab."""

    backend: Backend
    config: Config
    vpc_id: str = ""
    vpc_cidr: str = ""
    public_subnet: str = ""
    db_subnets: list[str] = field(default_factory=list)
    gateway_id: str = ""
    route_table_id: str = ""
    app_sg: str = ""
    db_sg: str = ""
    db_rule_id: str = ""
    instance_id: str = ""
    private_ip: str = ""
    cluster_id: str = ""
    writer: str = ""
    reader: str = ""

    @property
    def ec2(self) -> Any:
        return self.backend.client("ec2")

    @property
    def rds(self) -> Any:
        return self.backend.client("rds")

    def name(self, node: str) -> str:
        return resource_name(self.config.lab, self.config.learner, node)

    def tags(self, node: str) -> list[dict[str, str]]:
        return lab_tags(self.config.lab, self.config.learner, node)

    def tag_spec(self, kind: str, node: str) -> list[dict[str, Any]]:
        return [{"ResourceType": kind, "Tags": self.tags(node)}]


@contextmanager
def moto_region() -> Iterator[Backend]:
    """One in-process moto (no IAM policies to load) and a backend over it."""
    from moto import mock_aws

    with mock_aws():
        yield InProcessBackend.make()


def build_network(lab: Lab, second_octet: int) -> None:
    """VPC, a public subnet with a route to an internet gateway, two private DB subnets."""
    ec2 = lab.ec2
    lab.vpc_cidr = f"10.{second_octet}.0.0/16"
    lab.vpc_id = ec2.create_vpc(CidrBlock=lab.vpc_cidr, TagSpecifications=lab.tag_spec("vpc", NODE_VPC))["Vpc"]["VpcId"]
    lab.public_subnet = _subnet(lab, f"10.{second_octet}.0.0/24", "us-east-1a", NODE_PUBLIC_SUBNET)
    lab.db_subnets = [
        _subnet(lab, f"10.{second_octet}.{i + 1}.0/24", zone, node)
        for i, (zone, node) in enumerate(zip(("us-east-1a", "us-east-1b"), NODE_DB_SUBNETS, strict=True))
    ]
    lab.gateway_id = ec2.create_internet_gateway(
        TagSpecifications=lab.tag_spec("internet-gateway", NODE_INTERNET_GATEWAY)
    )["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=lab.gateway_id, VpcId=lab.vpc_id)
    table = ec2.create_route_table(VpcId=lab.vpc_id, TagSpecifications=lab.tag_spec("route-table", NODE_ROUTE_TABLE))
    lab.route_table_id = table["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=lab.route_table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=lab.gateway_id)
    ec2.associate_route_table(RouteTableId=lab.route_table_id, SubnetId=lab.public_subnet)


def _subnet(lab: Lab, cidr: str, zone: str, node: str) -> str:
    created = lab.ec2.create_subnet(
        VpcId=lab.vpc_id,
        CidrBlock=cidr,
        AvailabilityZone=zone,
        TagSpecifications=lab.tag_spec("subnet", node),
    )
    return created["Subnet"]["SubnetId"]


def build_groups(lab: Lab) -> None:
    """The app group (no inbound rule, default egress) and the db group (3306 from the app group)."""
    ec2 = lab.ec2
    lab.app_sg = _group(lab, NODE_SG_APP, "lab application tier")
    lab.db_sg = _group(lab, NODE_SG_DB, "lab database tier")
    permission = {
        "IpProtocol": "tcp",
        "FromPort": 3306,
        "ToPort": 3306,
        "UserIdGroupPairs": [{"GroupId": lab.app_sg, "Description": "MySQL from the app tier"}],
    }
    created = ec2.authorize_security_group_ingress(GroupId=lab.db_sg, IpPermissions=[permission])
    lab.db_rule_id = created["SecurityGroupRules"][0]["SecurityGroupRuleId"]


def _group(lab: Lab, node: str, description: str) -> str:
    return lab.ec2.create_security_group(
        GroupName=lab.name(node),
        Description=description,
        VpcId=lab.vpc_id,
        TagSpecifications=lab.tag_spec("security-group", node),
    )["GroupId"]


def build_database(lab: Lab, *, public: bool = False, encrypted: bool = True) -> None:
    """DB subnet group, an Aurora cluster (of the lab's engine), its writer and one reader."""
    rds = lab.rds
    subnet_group = lab.name(NODE_DB_SUBNET_GROUP)
    rds.create_db_subnet_group(
        DBSubnetGroupName=subnet_group,
        DBSubnetGroupDescription="lab database subnets",
        SubnetIds=lab.db_subnets,
        Tags=lab.tags(NODE_DB_SUBNET_GROUP),
    )
    lab.cluster_id = lab.name(NODE_CLUSTER)
    rds.create_db_cluster(
        **cluster_params(
            lab.cluster_id,
            managed=False,
            MasterUserPassword="Lab-pass-1234",
            DBSubnetGroupName=subnet_group,
            VpcSecurityGroupIds=[lab.db_sg],
            StorageEncrypted=encrypted,
            Tags=lab.tags(NODE_CLUSTER),
        )
    )
    lab.writer, lab.reader = lab.name(NODE_FIRST_DB), lab.name(db_instance_node(2))
    for identifier, node in ((lab.writer, NODE_FIRST_DB), (lab.reader, db_instance_node(2))):
        rds.create_db_instance(
            **instance_params(lab.cluster_id, identifier, PubliclyAccessible=public, Tags=lab.tags(node))
        )


def build_instance(lab: Lab, *, http_tokens: str = "required") -> None:
    """The app instance in the public subnet, in the app group, with a public IP and IMDSv2."""
    created = lab.ec2.run_instances(
        ImageId=MOTO_AMI,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=[
            {
                "DeviceIndex": 0,
                "SubnetId": lab.public_subnet,
                "Groups": [lab.app_sg],
                "AssociatePublicIpAddress": True,
            }
        ],
        MetadataOptions={"HttpTokens": http_tokens, "HttpEndpoint": "enabled"},
        TagSpecifications=lab.tag_spec("instance", NODE_INSTANCE),
    )["Instances"][0]
    lab.instance_id = created["InstanceId"]
    lab.private_ip = created["PrivateIpAddress"]


def build_lab(
    backend: Backend,
    *,
    database: bool = True,
    instance: bool = True,
    encrypted: bool = True,
    http_tokens: str = "required",
) -> Lab:
    """A default lab under a fresh learner name and VPC range; parts can be left out or made insecure."""
    number = next(_learners)
    lab = Lab(backend, Config(learner=f"learner{number}"))
    build_network(lab, 100 + number % 150)
    build_groups(lab)
    if database:
        build_database(lab, encrypted=encrypted)
    if instance:
        build_instance(lab, http_tokens=http_tokens)
    return lab
