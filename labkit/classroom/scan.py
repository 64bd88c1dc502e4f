"""A class-wide look at one region: every lab resource by its tags, and what merely looks like one.

The Resource Groups Tagging API misses DB subnet groups, key pairs and network interfaces (FACTS.md), so
this reads each type with its own describe call, as the per-learner inventory does. It also keeps what
is *not* a lab resource but looks related (an untagged VPC named like a lab, half-tagged resources), so
reset can say what it leaves alone and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labkit.aws.backend import Backend, get_backend
from labkit.aws.tags import TAG_LAB, TAG_LEARNER, tag_dict
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.resources import paginate

LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
GLOBAL = "global"  # the region column of IAM resources
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]|min|mins|hours?|days?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hour": 3600, "hours": 3600}
_UNIT_SECONDS |= {"d": 86400, "day": 86400, "days": 86400}


@dataclass(frozen=True)
class Seen:
    """One resource as the scan saw it: its lab tags (if any), state, creation time and size."""

    region: str
    kind: str
    resource_id: str
    name: str = ""
    lab: str | None = None
    learner: str | None = None
    state: str = ""
    created: datetime | None = None
    size: str = ""  # instance type or DB instance class
    public_ip: bool = False

    @property
    def tagged(self) -> bool:
        """Carries both lab tags: a lab resource that reset may delete (if its lab and learner are chosen)."""
        return bool(self.lab and self.learner)


@dataclass
class RegionScan:
    """What one region holds: lab resources and look-alikes, plus the backend that read them."""

    backend: Backend
    seen: list[Seen] = field(default_factory=list)

    @property
    def region(self) -> str:
        return self.backend.region

    def pairs(self) -> set[tuple[str, str]]:
        """Every (lab, learner) that has at least one tagged resource here."""
        return {(s.lab, s.learner) for s in self.seen if s.lab and s.learner}

    def of(self, lab: str, learner: str) -> list[Seen]:
        return [s for s in self.seen if s.lab == lab and s.learner == learner]

    def created(self, lab: str, learner: str) -> datetime | None:
        """When the learner's lab began: the oldest creation time among its resources (None if none has one)."""
        times = [s.created for s in self.of(lab, learner) if s.created is not None]
        return min(times) if times else None


# ----- inputs -----


def parse_age(value: str | float | timedelta | None, field: str = "older_than") -> timedelta | None:
    """'2h', '90m', '1d', '45s' (or seconds, or a timedelta) as a timedelta; None stays None."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = _AGE.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f"{value!r} is not an age", field=field, fix="write a number and a unit: 45s, 30m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def format_age(age: timedelta | None) -> str:
    """A short age for tables: 42s, 17m, 3h05m, 2d04h ('' when unknown)."""
    if age is None:
        return ""
    seconds = max(int(age.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def check_names(lab: str | None, learners: Iterable[str]) -> None:
    """Refuse a lab or learner filter that no lab could carry (before any AWS call)."""
    for learner in learners:
        LabConfig(lab=lab or "auroralab", learner=learner)
    if lab is not None:
        LabConfig(lab=lab)


def class_backends(
    regions: Sequence[str] = (), backend: str | Backend | None = None, backends: Sequence[Backend] = ()
) -> list[Backend]:
    """One backend per region: those given; else the given backend (in its own region, or of its kind in each
    region asked for); else one of the named kind (sandbox by default) per region."""
    if backends:
        return list(backends)
    if isinstance(backend, Backend) and not regions:
        return [backend]
    chosen = list(dict.fromkeys(regions)) or [LabConfig.load().region]
    for region in chosen:
        LabConfig(region=region)  # refuses an unknown region naming the field
    kind = backend.name if isinstance(backend, Backend) else backend
    return [get_backend(kind, region) for region in chosen]


# ----- the scan -----


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _seen(region: str, kind: str, resource_id: str, tags: list[dict[str, str]] | None, **facts: Any) -> Seen:
    found = tag_dict(tags)
    name = facts.pop("name", None) or found.get("Name", "")
    return Seen(region, kind, resource_id, name, found.get(TAG_LAB), found.get(TAG_LEARNER), **facts)


def _ec2(region: str, ec2: Any) -> list[Seen]:
    seen = []
    for vpc in paginate(ec2, "describe_vpcs", "Vpcs"):
        if not vpc.get("IsDefault"):
            seen.append(_seen(region, "VPC", vpc["VpcId"], vpc.get("Tags"), state=vpc.get("State", "")))
    for subnet in paginate(ec2, "describe_subnets", "Subnets"):
        seen.append(_seen(region, "Subnet", subnet["SubnetId"], subnet.get("Tags"), state=subnet.get("State", "")))
    for group in paginate(ec2, "describe_security_groups", "SecurityGroups"):
        if group["GroupName"] != "default":
            seen.append(_seen(region, "Security group", group["GroupId"], group.get("Tags"), name=group["GroupName"]))
    for gateway in paginate(ec2, "describe_internet_gateways", "InternetGateways"):
        seen.append(_seen(region, "Internet gateway", gateway["InternetGatewayId"], gateway.get("Tags")))
    filters = [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    for reservation in paginate(ec2, "describe_instances", "Reservations", Filters=filters):
        for i in reservation["Instances"]:
            facts = {"state": i["State"]["Name"], "created": _when(i.get("LaunchTime")), "size": i["InstanceType"]}
            seen.append(
                _seen(region, "EC2 instance", i["InstanceId"], i.get("Tags"), **facts, public_ip="PublicIpAddress" in i)
            )
    for pair in ec2.describe_key_pairs()["KeyPairs"]:
        seen.append(_seen(region, "Key pair", pair["KeyName"], pair.get("Tags"), created=_when(pair.get("CreateTime"))))
    for eni in paginate(ec2, "describe_network_interfaces", "NetworkInterfaces"):
        seen.append(
            _seen(
                region, "Network interface", eni["NetworkInterfaceId"], eni.get("TagSet"), state=eni.get("Status", "")
            )
        )
    for address in ec2.describe_addresses()["Addresses"]:
        seen.append(
            _seen(
                region,
                "Elastic IP",
                address.get("AllocationId", address.get("PublicIp", "")),
                address.get("Tags"),
                public_ip=True,
            )
        )
    return seen  # fmt: skip


def _rds(region: str, rds: Any) -> list[Seen]:
    seen = []
    for cluster in paginate(rds, "describe_db_clusters", "DBClusters"):
        facts = {"state": cluster["Status"], "created": _when(cluster.get("ClusterCreateTime"))}
        seen.append(_seen(region, "Aurora cluster", cluster["DBClusterIdentifier"], cluster.get("TagList"), **facts))
    for instance in paginate(rds, "describe_db_instances", "DBInstances"):
        facts = {"state": instance["DBInstanceStatus"], "created": _when(instance.get("InstanceCreateTime"))}
        kind = "Aurora instance" if instance.get("DBClusterIdentifier") else "RDS instance"
        ident = instance["DBInstanceIdentifier"]
        seen.append(_seen(region, kind, ident, instance.get("TagList"), **facts, size=instance["DBInstanceClass"]))
    for snap in paginate(rds, "describe_db_cluster_snapshots", "DBClusterSnapshots"):
        facts = {"state": snap.get("Status", ""), "created": _when(snap.get("SnapshotCreateTime"))}
        seen.append(
            _seen(region, "Cluster snapshot", snap["DBClusterSnapshotIdentifier"], snap.get("TagList"), **facts)
        )
    for group in paginate(rds, "describe_db_subnet_groups", "DBSubnetGroups"):
        if group["DBSubnetGroupName"] != "default":  # describe omits tags: one list_tags call per group
            tags = rds.list_tags_for_resource(ResourceName=group["DBSubnetGroupArn"])["TagList"]
            seen.append(
                _seen(region, "DB subnet group", group["DBSubnetGroupName"], tags, state=group["SubnetGroupStatus"])
            )
    return seen  # fmt: skip


def _iam(iam: Any) -> list[Seen]:
    """Roles and instance profiles: tags are read only under /labkit/ (where labkit puts them); others by name."""
    seen = []
    for role in paginate(iam, "list_roles", "Roles"):
        tags = (
            iam.get_role(RoleName=role["RoleName"])["Role"].get("Tags") if role["Path"].startswith("/labkit/") else None
        )
        seen.append(_seen(GLOBAL, "IAM role", role["RoleName"], tags, created=_when(role.get("CreateDate"))))
    for profile in paginate(iam, "list_instance_profiles", "InstanceProfiles"):
        name = profile["InstanceProfileName"]
        tags = (
            iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Tags")
            if profile["Path"].startswith("/labkit/")
            else None
        )
        seen.append(_seen(GLOBAL, "IAM instance profile", name, tags, created=_when(profile.get("CreateDate"))))
    return seen  # fmt: skip


def scan(backends: Sequence[Backend]) -> list[RegionScan]:
    """Read every region once. IAM is global: its resources join the first region where their learner has
    regional resources (else the first region), so each is listed, and deleted, once."""
    scans = [RegionScan(b, _ec2(b.region, b.client("ec2")) + _rds(b.region, b.client("rds"))) for b in backends]
    if not scans:
        return scans
    for item in _iam(backends[0].client("iam")):
        home = next((s for s in scans if (item.lab, item.learner) in s.pairs()), scans[0])
        home.seen.append(item)
    return scans


def now() -> datetime:
    """The current time, timezone-aware (ages are measured against it)."""
    return datetime.now(UTC)
