"""Compute: the EC2 instance (Amazon Linux 2023, IMDSv2 only, app group, SSM role) and the optional key pair.

The instance's user data installs the lab's web app (labkit.app) as a service on 127.0.0.1:8080.

The private key of a key pair is written once, with 0600 permissions, under the labkit home (never the
repository), and never printed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from labkit.aws.errors import error_code
from labkit.aws.tags import NODE_CLUSTER, NODE_INSTANCE_PROFILE, NODE_KEY_PAIR, NODE_PUBLIC_SUBNET, NODE_SG_APP
from labkit.errors import LabkitError
from labkit.home import labkit_home
from labkit.lab.resources import Found, LabContext, Resource, by_tags, paginate

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


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


class KeyPair(Resource):
    kind = "Key pair"

    @classmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        pairs = _ec2(ctx).describe_key_pairs(Filters=ctx.filters())["KeyPairs"]
        return [  # the name is the id learners use (ssh -i NAME.pem); moto deletes by name only
            Found(cls.kind, ctx.node_of(p.get("Tags")), p["KeyName"], "exists", p.get("KeyPairId", ""))
            for p in pairs
            if ctx.is_ours(p.get("Tags"))
        ]

    def create(self, ctx: LabContext) -> str:
        reply = _ec2(ctx).create_key_pair(
            KeyName=ctx.name(self.node),
            KeyType="ed25519",
            KeyFormat="pem",
            TagSpecifications=ctx.tag_specifications(self.node, "key-pair"),
        )
        _write_private_key(key_path(ctx), reply["KeyMaterial"])
        return reply["KeyName"]

    def converge(self, ctx: LabContext, resource_id: str, *, dry_run: bool = False) -> list[str]:
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
        if not dry_run:
            _ec2(ctx).delete_key_pair(KeyName=resource_id)
            ctx.ids[self.node] = self.create(ctx)
        return ["replace the key pair: its private key is missing here"]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("ec2", "key_pair_exists", self.node, KeyNames=[resource_id])

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        _ec2(ctx).delete_key_pair(KeyName=resource_id)
        key_path(ctx).unlink(missing_ok=True)


def latest_ami(ctx: LabContext) -> str:
    """The current Amazon Linux 2023 AMI of the region, from AWS's public SSM parameter."""
    return ctx.cached("ami", lambda: ctx.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"])


def app_user_data(ctx: LabContext) -> str:
    """The script that installs the web app for this lab's cluster (see labkit.app.userdata)."""
    from labkit.app.server import Settings
    from labkit.app.userdata import render
    from labkit.lab.resources.database import DATABASE_NAME

    return render(Settings(cluster=ctx.name(NODE_CLUSTER), region=ctx.config.region, database=DATABASE_NAME))


def _profile_not_visible_yet(exc: ClientError) -> bool:
    message = exc.response.get("Error", {}).get("Message", "")
    return error_code(exc) == "InvalidParameterValue" and "iam" in message.lower()


class Instance(Resource):
    kind = "EC2 instance"
    leaving_states = ("shutting-down",)

    @classmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        filters = [*ctx.filters(), {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
        reservations = paginate(_ec2(ctx), "describe_instances", "Reservations", Filters=filters)
        instances = [i for r in reservations for i in r["Instances"]]
        found = by_tags(ctx, cls.kind, instances, "InstanceId")
        addresses = {i["InstanceId"]: i.get("PublicIpAddress", "") for i in instances}
        return [Found(f.kind, f.node, f.resource_id, f.state, addresses[f.resource_id]) for f in found]

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
        delay = ctx.timing.retry_first_delay
        for attempt in range(1, ctx.timing.retry_attempts + 1):
            try:
                return _ec2(ctx).run_instances(**params)["Instances"][0]["InstanceId"]
            except ClientError as exc:
                if not _profile_not_visible_yet(exc) or attempt == ctx.timing.retry_attempts:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, ctx.timing.retry_max_delay)
        raise LabkitError("unreachable")  # pragma: no cover

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("ec2", "instance_running", self.node, InstanceIds=[resource_id])

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        _ec2(ctx).terminate_instances(InstanceIds=[resource_id])
        ctx.wait("ec2", "instance_terminated", self.node, InstanceIds=[resource_id])


class Volume:
    """EBS volumes tagged at launch; they go with the instance. Listed only to prove nothing is left."""

    kind = "EBS volume"

    @classmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        volumes = paginate(_ec2(ctx), "describe_volumes", "Volumes", Filters=ctx.filters())
        return by_tags(ctx, cls.kind, volumes, "VolumeId")


NODE_LEFTOVER_INTERFACES = "network-interfaces"  # not made by apply; destroy removes detached ones


def _tagged_interfaces(ctx: LabContext) -> list[dict[str, Any]]:
    return paginate(_ec2(ctx), "describe_network_interfaces", "NetworkInterfaces", Filters=ctx.filters())


class NetworkInterface:
    """Network interfaces in use, tagged at launch; they go with the instance. Listed to prove nothing is left."""

    kind = "Network interface"

    @classmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        interfaces = [i for i in _tagged_interfaces(ctx) if i.get("Status") != "available"]
        return by_tags(ctx, cls.kind, interfaces, "NetworkInterfaceId", tags_key="TagSet", state_key="Status")


class LeftoverInterfaces(Resource):
    """Detached lab network interfaces (an instance's left behind): they hold their subnet and groups, so they go first."""

    kind = "Network interface (detached)"

    @classmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        interfaces = [i for i in _tagged_interfaces(ctx) if i.get("Status") == "available"]
        found = by_tags(ctx, cls.kind, interfaces, "NetworkInterfaceId", tags_key="TagSet", state_key="Status")
        return [Found(f.kind, NODE_LEFTOVER_INTERFACES, f.resource_id, f.state) for f in found]

    def create(self, ctx: LabContext) -> str:
        raise LabkitError("labkit never creates detached network interfaces", field=self.node)

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        ctx.retry(lambda: _ec2(ctx).delete_network_interface(NetworkInterfaceId=resource_id), self.node)
