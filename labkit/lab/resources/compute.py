"""Compute: the EC2 instance (Amazon Linux 2023, IMDSv2 only, app group, SSM role) and the optional key pair.

The instance's user data installs the lab's web app (labkit.app) as a service on 127.0.0.1:8080.

The private key of a key pair is written once, with 0600 permissions, under the labkit home (never the
repository), and never printed.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from labkit.app.server import Settings
from labkit.app.userdata import engine_setting, render
from labkit.aws.errors import error_code, error_message
from labkit.aws.tags import NODE_CLUSTER, NODE_INSTANCE_PROFILE, NODE_KEY_PAIR, NODE_PUBLIC_SUBNET, NODE_SG_APP
from labkit.engines import engine_of
from labkit.errors import ConfigError
from labkit.home import labkit_home
from labkit.lab.resources.base import Change, LabContext, Resource, ResourceType
from labkit.lab.resources.database import DATABASE_NAME
from labkit.lab.resources.registry import Describe, PriceRow, TaggedCreate, register

# AWS's public parameters naming the current Amazon Linux 2023 AMI, one per architecture (Amazon Linux 2023 User
# Guide, "Launching AL2023 using the SSM parameter"). RunInstances refuses an AMI whose architecture the instance
# type lacks, e.g. the x86_64 AMI on a Graviton t4g.micro (EC2 User Guide, "Instance types": processors).
AMI_PARAMETERS = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
AMI_PARAMETER = AMI_PARAMETERS["x86_64"]
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
ROOT_VOLUME_GIB = 8  # the Amazon Linux 2023 AMI's root volume (gp3)


def _ec2(ctx: LabContext) -> Any:
    return ctx.client("ec2")


def key_path(ctx: LabContext) -> Path:
    """Where the lab's private key is kept: outside the repository, readable by its owner only."""
    return labkit_home() / "keys" / f"{ctx.name(NODE_KEY_PAIR)}.pem"


def _write_private_key(path: Path, material: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(material)
    path.chmod(0o600)


@register("key-pair")
class KeyPair(Resource):
    kind = "Key pair"
    # The name is the id learners use (ssh -i NAME.pem); moto deletes by name only.
    describe = Describe(
        "ec2", "describe_key_pairs", "KeyPairs", "KeyName", state="", detail="KeyPairId", created="CreateTime"
    )
    stage = "compute"
    tagged_create = TaggedCreate("CreateKeyPair", "TagSpecifications")

    def create(self, ctx: LabContext) -> str:
        reply = _ec2(ctx).create_key_pair(
            KeyName=ctx.name(self.node),
            KeyType="ed25519",
            KeyFormat="pem",
            TagSpecifications=ctx.tag_specifications(self.node, "key-pair"),
        )
        _write_private_key(key_path(ctx), reply["KeyMaterial"])
        return reply["KeyName"]

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        """A key pair whose private key was lost (e.g. a create whose reply never arrived) is replaced."""
        if key_path(ctx).exists():
            return []
        in_use = _ec2(ctx).describe_instances(
            Filters=[
                {"Name": "key-name", "Values": [ctx.name(self.node)]},
                {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES},
            ]
        )["Reservations"]
        if in_use:
            ctx.notes.append(f"the private key of {ctx.name(self.node)} is not in {key_path(ctx).parent}")
            return []
        return [
            Change("replace the key pair: its private key is missing here", partial(self._replace, ctx, resource_id))
        ]

    def _replace(self, ctx: LabContext, resource_id: str) -> None:
        _ec2(ctx).delete_key_pair(KeyName=resource_id)
        ctx.ids[self.node] = self.create(ctx)

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("ec2", "key_pair_exists", self.node, KeyNames=[resource_id])

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        _ec2(ctx).delete_key_pair(KeyName=resource_id)
        key_path(ctx).unlink(missing_ok=True)


def instance_architecture(ctx: LabContext) -> str:
    """The architecture the AMI must have for the configured instance type (x86_64 where it runs both)."""

    def compute() -> str:
        found = _ec2(ctx).describe_instance_types(InstanceTypes=[ctx.config.instance_type])["InstanceTypes"]
        supported = found[0].get("ProcessorInfo", {}).get("SupportedArchitectures", []) if found else []
        for architecture in AMI_PARAMETERS:
            if architecture in supported:
                return architecture
        raise ConfigError(
            f"{ctx.config.instance_type} runs {', '.join(supported) or 'no known architecture'}; "
            "Amazon Linux 2023 needs x86_64 or arm64",
            field="instance_type",
            fix="use e.g. t3.micro (x86_64) or t4g.micro (arm64, Graviton)",
        )

    return ctx.cached("architecture", compute)


def ami_parameter(ctx: LabContext) -> str:
    """The public SSM parameter of the AMI that matches the instance type's architecture."""
    return AMI_PARAMETERS[instance_architecture(ctx)]


def latest_ami(ctx: LabContext) -> str:
    """The current Amazon Linux 2023 AMI of the region for the instance type's architecture."""
    return ctx.cached("ami", lambda: ctx.client("ssm").get_parameter(Name=ami_parameter(ctx))["Parameter"]["Value"])


def app_user_data(ctx: LabContext) -> str:
    """The script that installs the web app for this lab's cluster (see labkit.app.userdata)."""
    settings = Settings(
        cluster=ctx.name(NODE_CLUSTER), region=ctx.config.region, database=DATABASE_NAME,
        engine=engine_setting(engine_of(ctx.config)),
    )  # fmt: skip
    return render(settings)


def _profile_not_visible_yet(exc: ClientError) -> bool:
    return error_code(exc) == "InvalidParameterValue" and "iam" in error_message(exc).lower()


@register("instance")
class Instance(Resource):
    kind = "EC2 instance"
    describe = Describe(
        "ec2", "describe_instances", "Reservations", "InstanceId", detail="PublicIpAddress", created="LaunchTime",
        size="InstanceType", public_ip="PublicIpAddress",
        filters=({"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES},),
    )  # fmt: skip
    stage = "compute"
    tagged_create = TaggedCreate("RunInstances", "TagSpecifications")
    companions = ("volume", "network-interface")
    prices = (
        PriceRow("EC2 instance", "ec2", size_setting="instance_type"),
        PriceRow("public IPv4 address", "public-ipv4", size="address"),
    )
    leaving_states = ("shutting-down",)

    @classmethod
    def items_of(cls, reply_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [instance for reservation in reply_items for instance in reservation["Instances"]]

    def create(self, ctx: LabContext) -> str:
        params: dict[str, Any] = {
            "ImageId": latest_ami(ctx),
            "InstanceType": ctx.config.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": ctx.id_of(NODE_PUBLIC_SUBNET),
            "SecurityGroupIds": [ctx.id_of(NODE_SG_APP)],
            "IamInstanceProfile": {"Name": ctx.id_of(NODE_INSTANCE_PROFILE)},
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},  # IMDSv2 only
            "UserData": app_user_data(ctx),
            "TagSpecifications": ctx.tag_specifications(self.node, "instance", "volume", "network-interface"),
        }
        if NODE_KEY_PAIR in self.depends_on:
            params["KeyName"] = ctx.name(NODE_KEY_PAIR)
        return self._run(ctx, params)

    def _run(self, ctx: LabContext, params: dict[str, Any]) -> str:
        """run_instances, retried while a new instance profile is not yet visible to EC2 (IAM is eventually consistent)."""
        run = _ec2(ctx).run_instances
        return ctx.retry(lambda: run(**params)["Instances"][0]["InstanceId"], self.node, _profile_not_visible_yet)

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("ec2", "instance_running", self.node, InstanceIds=[resource_id])

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        _ec2(ctx).terminate_instances(InstanceIds=[resource_id])
        ctx.wait("ec2", "instance_terminated", self.node, InstanceIds=[resource_id])


@register("volume")
class Volume(ResourceType):
    """EBS volumes tagged at launch; they go with the instance. Listed only to prove nothing is left."""

    kind = "EBS volume"
    describe = Describe("ec2", "describe_volumes", "Volumes", "VolumeId")
    prices = (PriceRow("EBS gp3 root volume", "ebs-gp3", size=str(ROOT_VOLUME_GIB), label=f"{ROOT_VOLUME_GIB} GiB"),)
