"""A strict layer over moto: the refusals real AWS makes and moto does not (FACTS.md), as botocore handlers.

Installed on a backend's boto3 session, each handler looks at the account through a separate, plain
session (so its own look-ups are not checked again) and raises the ClientError AWS would raise. An
ordering bug in provisioning or teardown therefore fails a unit test instead of a learner's lab.

It also enforces one lab rule that is not AWS's: every create call must carry the lab tags.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import boto3
from botocore.exceptions import ClientError

from labkit.aws.backend import FAKE_CREDENTIALS, Backend
from labkit.aws.tags import TAG_LAB, TAG_LEARNER, TAG_NODE
from labkit.engines import AuroraEngine, default_engine
from labkit.lab.resources.compute import LIVE_INSTANCE_STATES
from labkit.lab.resources.registry import tagged_creates

RDS_IDENTIFIER = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)$")
PASSWORD_FORBIDDEN = set('/"@ ')
LAB_TAG_KEYS = {TAG_LAB, TAG_LEARNER, TAG_NODE}

# Create calls that must tag what they make, and where their tags are: each registered type declares its own.
TAGGED_CREATES = tagged_creates()


# The lab engine's versions as RDS listed them (the dated catalog of its description, which the sandbox serves
# too: one list for both); a test can retire any of them in its own copy.
ENGINE = default_engine()
CATALOG_VERSIONS = dict(ENGINE.catalog.versions)
CATALOG_DEFAULT = ENGINE.catalog.default


@dataclass
class EngineCatalog:
    """What RDS offers for the lab's engine in the region: versions (with their status), the default, and the
    instance classes orderable for each available version in the region's zones. moto has neither
    describe_db_engine_versions nor any orderable option for Aurora's engines; this answers both, and a test can
    `retire` a version (as Aurora does about 12 months after a non-LTS release) or make a class unorderable."""

    zones: tuple[str, ...]
    versions: dict[str, str] = field(default_factory=lambda: dict(CATALOG_VERSIONS))
    default: str = CATALOG_DEFAULT
    classes: tuple[str, ...] = ENGINE.instance_classes
    unorderable: set[str] = field(default_factory=set)
    engine: AuroraEngine = ENGINE

    def retire(self, version: str) -> None:
        """Deprecate `version`; if it was the default, the newest available version becomes the default."""
        self.versions[version] = "deprecated"
        if self.default == version:
            available = [v for v, status in self.versions.items() if status == "available"]
            self.default = max(available, key=self.engine.versions.sort_key)

    def available(self, version: str) -> bool:
        return self.versions.get(version) == "available"

    def engine_versions(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("Engine") not in (None, self.engine.name):
            return {"DBEngineVersions": []}
        chosen = [self.default] if params.get("DefaultOnly") else list(self.versions)
        if params.get("EngineVersion"):
            chosen = [v for v in chosen if v == params["EngineVersion"]]
        if not params.get("IncludeAll"):
            chosen = [v for v in chosen if self.available(v)]
        return {
            "DBEngineVersions": [
                {"Engine": self.engine.name, "EngineVersion": v,
                 "DBParameterGroupFamily": self.engine.catalog.family_of(v)[0],
                 "MajorEngineVersion": self.engine.catalog.family_of(v)[1], "Status": self.versions[v]}
                for v in chosen
            ]
        }  # fmt: skip

    def orderable(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("Engine") != self.engine.name:
            return {"OrderableDBInstanceOptions": []}
        versions = [v for v in self.versions if self.available(v)]
        if params.get("EngineVersion"):
            versions = [v for v in versions if v == params["EngineVersion"]]
        classes = [c for c in self.classes if c not in self.unorderable]
        if params.get("DBInstanceClass"):
            classes = [c for c in classes if c == params["DBInstanceClass"]]
        zones = [{"Name": zone} for zone in self.zones]
        options = [
            {"Engine": self.engine.name, "EngineVersion": v, "DBInstanceClass": c, "AvailabilityZones": zones,
             "Vpc": True, "SupportsClusters": True}
            for v in versions
            for c in classes
        ]  # fmt: skip
        return {"OrderableDBInstanceOptions": options[: params.get("MaxRecords") or len(options)]}


# Calls that name a just-created VPC or route table, and the NotFound code EC2 answers before it sees it.
EVENTUALLY_CONSISTENT = {
    "DescribeVpcs": ("VpcIds", "InvalidVpcID.NotFound"),
    "DescribeVpcAttribute": ("VpcId", "InvalidVpcID.NotFound"),
    "ModifyVpcAttribute": ("VpcId", "InvalidVpcID.NotFound"),
    "DescribeRouteTables": ("RouteTableIds", "InvalidRouteTableID.NotFound"),
    "CreateRoute": ("RouteTableId", "InvalidRouteTableID.NotFound"),
    "AssociateRouteTable": ("RouteTableId", "InvalidRouteTableID.NotFound"),
}


class StrictViolation(AssertionError):
    """A lab rule (not an AWS one) was broken, e.g. a create call without the lab tags."""


def aws_error(operation: str, code: str, message: str, status: int = 400) -> ClientError:
    """A ClientError shaped like the one AWS returns."""
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)  # type: ignore[arg-type]


class StrictLayer:
    """Raise what AWS raises where moto stays silent. `refusals` records every refusal, for assertions."""

    def __init__(
        self, backend: Backend, *, require_tags: bool = True, user_boundaries: UserBoundaries | None = None
    ) -> None:
        self.backend = backend
        self.require_tags = require_tags
        self.refusals: list[tuple[str, str]] = []
        self.creating_polls: dict[str, int] = {}  # cluster id -> describes that still say "creating"
        self.slow_cluster_polls = 0
        self.lingering_groups: dict[str, int] = {}  # group id -> deletions refused after its instance went
        self.linger_after_terminate = 0
        self.lingering_subnets: dict[str, int] = {}  # subnet id -> deletions refused while RDS releases its ENIs
        self.linger_after_cluster = 0
        self.profile_lag = 0  # RunInstances refusals of each new instance profile, as IAM propagates it
        self.unseen_profiles: dict[str, int] = {}
        self.throttle = Throttle(self.refusals, threading.Lock())
        self._plain = boto3.Session(region_name=backend.region, **FAKE_CREDENTIALS)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.catalog = EngineCatalog(zones=tuple(f"{backend.region}{letter}" for letter in "abcdef"))
        self.lag_after_create = 0  # NotFound answers about each new VPC or route table, as EC2 gives at first
        self.unseen: dict[str, int] = {}  # id -> NotFound answers left
        self.user_boundaries = user_boundaries or UserBoundaries()  # shared by every session of one account

    # ----- wiring -----
    def install(self) -> StrictLayer:
        """Register the handlers on the backend's session; do it before the backend makes any client."""
        if getattr(self.backend, "_clients", None):
            raise RuntimeError("install the strict layer before the backend creates clients")
        events = self.backend.session().events
        for (service, operation), check in self._checks().items():
            events.register(f"before-parameter-build.{service}.{operation}", self._guard(operation, check))
        if self.require_tags:
            for (service, operation), key in TAGGED_CREATES.items():
                events.register(f"before-parameter-build.{service}.{operation}", self._tag_guard(operation, key))
        for operation, answer in (
            ("DescribeDBEngineVersions", self.catalog.engine_versions),
            ("DescribeOrderableDBInstanceOptions", self.catalog.orderable),
        ):
            events.register(f"before-parameter-build.rds.{operation}", _keep_params)
            events.register(f"before-call.rds.{operation}", _answer_from(answer))
        for operation, key in (("CreateVpc", "Vpc"), ("CreateRouteTable", "RouteTable")):
            events.register(f"after-call.ec2.{operation}", self._created_unseen(key))
        for operation, (param, code) in EVENTUALLY_CONSISTENT.items():
            events.register(f"before-parameter-build.ec2.{operation}", self._not_seen_yet(operation, param, code))
        events.register("after-call.rds.CreateDBCluster", self._cluster_created)
        events.register("after-call.rds.DescribeDBClusters", self._report_creating)
        events.register("before-parameter-build.ec2.TerminateInstances", self._instances_terminating)
        events.register("before-parameter-build.rds.DeleteDBCluster", self._cluster_deleting)
        for operation in ("CreateInstanceProfile", "AddRoleToInstanceProfile"):
            events.register(f"before-parameter-build.iam.{operation}", self._profile_changing)
        events.register("before-parameter-build.ec2.RunInstances", self._guard("RunInstances", self.check_profile_seen))
        self.throttle.install(events)
        events.register("before-parameter-build.iam.ListInstanceProfiles", self._remember_path_prefix)
        events.register("after-call.iam.ListInstanceProfiles", self._filter_by_path_prefix)
        self.user_boundaries.install(events)
        return self

    def _checks(self) -> dict[tuple[str, str], Callable[[dict[str, Any]], None]]:
        return {
            ("ec2", "DeleteSecurityGroup"): self.check_delete_security_group,
            ("ec2", "DeleteSubnet"): self.check_delete_subnet,
            ("ec2", "DetachInternetGateway"): self.check_detach_internet_gateway,
            ("ec2", "DeleteInternetGateway"): self.check_delete_internet_gateway,
            ("rds", "CreateDBCluster"): self.check_create_cluster,
            ("rds", "CreateDBInstance"): self.check_create_db_instance,
            ("rds", "CreateDBSubnetGroup"): self.check_create_subnet_group,
            ("rds", "DeleteDBSubnetGroup"): self.check_delete_subnet_group,
            ("rds", "DeleteDBCluster"): self.check_delete_cluster,
            ("rds", "DeleteDBClusterParameterGroup"): self.check_delete_cluster_parameter_group,
            ("iam", "DeleteRole"): self.check_delete_role,
        }

    def _guard(self, operation: str, check: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
        def handler(params: dict[str, Any], **_: Any) -> None:
            try:
                check(params)
            except ClientError as exc:
                self.refusals.append((operation, exc.response["Error"]["Code"]))
                raise

        return handler

    def _tag_guard(self, operation: str, key: str) -> Callable[..., None]:
        def handler(params: dict[str, Any], **_: Any) -> None:
            if not self.require_tags:
                return
            given = params.get(key) or []
            if key == "TagSpecifications":
                keys = [{t["Key"] for t in spec.get("Tags", [])} for spec in given]
                tagged = bool(keys) and all(k >= LAB_TAG_KEYS for k in keys)
            else:
                tagged = {t["Key"] for t in given} >= LAB_TAG_KEYS
            if not tagged:
                raise StrictViolation(f"{operation} without the lab tags in {key}: the resource would be untracked")

        return handler

    def client(self, service: str) -> Any:
        """A client on a plain session: the layer's own look-ups are not checked again."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._plain.client(service, endpoint_url=self.backend.endpoint_url())
            return self._clients[service]

    # ----- EC2 -----
    def _live_instances(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        filters = [*filters, {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
        reservations = self.client("ec2").describe_instances(Filters=filters)["Reservations"]
        return [i for r in reservations for i in r["Instances"]]

    def _interfaces_in_use(self, interfaces: list[dict[str, Any]]) -> bool:
        """moto keeps an instance's interface after termination; AWS deletes it. Count only live ones."""
        attached = {i.get("Attachment", {}).get("InstanceId") for i in interfaces}
        if None in attached:
            return True  # a detached interface still uses its groups
        if not attached:
            return False
        return bool(self._live_instances([{"Name": "instance-id", "Values": sorted(attached)}]))

    def check_delete_security_group(self, params: dict[str, Any]) -> None:
        group_id = params["GroupId"]
        ec2, rds = self.client("ec2"), self.client("rds")
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        if group["GroupName"] == "default":
            raise aws_error("DeleteSecurityGroup", "CannotDelete", f"the default group {group_id} cannot be deleted")
        violation = f"resource {group_id} has a dependent object"
        rules = ec2.describe_security_group_rules()["SecurityGroupRules"]
        if any(r.get("ReferencedGroupInfo", {}).get("GroupId") == group_id and r["GroupId"] != group_id for r in rules):
            raise aws_error("DeleteSecurityGroup", "DependencyViolation", f"{violation} (a rule of another group)")
        if self._live_instances([{"Name": "instance.group-id", "Values": [group_id]}]):
            raise aws_error("DeleteSecurityGroup", "DependencyViolation", f"{violation} (an instance)")
        interfaces = ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group_id]}])
        if self._interfaces_in_use(interfaces["NetworkInterfaces"]):
            raise aws_error("DeleteSecurityGroup", "DependencyViolation", f"{violation} (a network interface)")
        for item in [*rds.describe_db_clusters()["DBClusters"], *rds.describe_db_instances()["DBInstances"]]:
            if group_id in [g["VpcSecurityGroupId"] for g in item.get("VpcSecurityGroups", [])]:
                raise aws_error("DeleteSecurityGroup", "DependencyViolation", f"{violation} (an RDS resource)")
        with self._lock:
            if self.lingering_groups.get(group_id, 0) > 0:
                self.lingering_groups[group_id] -= 1
                raise aws_error(
                    "DeleteSecurityGroup", "DependencyViolation", f"{violation} (an interface being released)"
                )

    def _instances_terminating(self, params: dict[str, Any], **_: Any) -> None:
        """Optionally keep an instance's groups busy for a few deletions, as its interface is released."""
        if not self.linger_after_terminate:
            return
        for instance in self._live_instances([{"Name": "instance-id", "Values": params.get("InstanceIds", [])}]):
            for group in instance.get("SecurityGroups", []):
                with self._lock:
                    self.lingering_groups[group["GroupId"]] = self.linger_after_terminate

    def check_delete_subnet(self, params: dict[str, Any]) -> None:
        subnet_id = params["SubnetId"]
        if self._live_instances([{"Name": "subnet-id", "Values": [subnet_id]}]):
            raise aws_error(
                "DeleteSubnet",
                "DependencyViolation",
                f"the subnet {subnet_id} has dependencies (an instance)",
            )
        rds = self.client("rds")
        groups = {g["DBSubnetGroupName"]: g for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]}
        for cluster in rds.describe_db_clusters()["DBClusters"]:
            group = groups.get(cluster.get("DBSubnetGroup", ""))
            if group and subnet_id in [s["SubnetIdentifier"] for s in group["Subnets"]]:
                raise aws_error("DeleteSubnet", "DependencyViolation", f"the subnet {subnet_id} has dependencies (RDS)")
        # Any network interface in the subnet, attached to a live instance or detached, blocks it (EC2 API
        # reference, DeleteSubnet: "You must terminate all running instances in the subnet before you can delete
        # the subnet"; a detached interface stays until deleted). moto keeps a terminated instance's interface.
        interfaces = self.client("ec2").describe_network_interfaces(
            Filters=[{"Name": "subnet-id", "Values": [subnet_id]}]
        )
        if self._interfaces_in_use(interfaces["NetworkInterfaces"]):
            message = f"The subnet '{subnet_id}' has dependencies and cannot be deleted. (a network interface)"
            raise aws_error("DeleteSubnet", "DependencyViolation", message)
        with self._lock:
            if self.lingering_subnets.get(subnet_id, 0) > 0:
                self.lingering_subnets[subnet_id] -= 1
                message = f"The subnet '{subnet_id}' has dependencies and cannot be deleted. (RDS's interfaces)"
                raise aws_error("DeleteSubnet", "DependencyViolation", message)

    def _cluster_deleting(self, params: dict[str, Any], **_: Any) -> None:
        """Optionally keep the cluster's subnets busy for a few deletions: Aurora's requester-managed network
        interfaces are released some minutes after its instances and cluster are gone."""
        if not self.linger_after_cluster:
            return
        rds = self.client("rds")
        clusters = rds.describe_db_clusters(DBClusterIdentifier=params["DBClusterIdentifier"])["DBClusters"]
        group = clusters[0].get("DBSubnetGroup") if clusters else None
        if group:
            subnets = rds.describe_db_subnet_groups(DBSubnetGroupName=group)["DBSubnetGroups"][0]["Subnets"]
            with self._lock:
                for subnet in subnets:
                    self.lingering_subnets[subnet["SubnetIdentifier"]] = self.linger_after_cluster

    def _created_unseen(self, key: str) -> Callable[..., None]:
        def handler(parsed: dict[str, Any], **_: Any) -> None:
            if self.lag_after_create and key in parsed:
                with self._lock:
                    self.unseen[parsed[key][f"{key}Id"]] = self.lag_after_create

        return handler

    def _not_seen_yet(self, operation: str, param: str, code: str) -> Callable[..., None]:
        """EC2 is eventually consistent: right after a create, calls naming the new id may say NotFound
        (EC2 API reference, "Eventual consistency in the Amazon EC2 API")."""

        def handler(params: dict[str, Any], **_: Any) -> None:
            named = params.get(param)
            for resource_id in named if isinstance(named, list) else [named]:
                with self._lock:
                    left = self.unseen.get(resource_id, 0)
                    if left > 0:
                        self.unseen[resource_id] = left - 1
                        self.refusals.append((operation, code))
                        raise aws_error(operation, code, f"The ID '{resource_id}' does not exist")

        return handler

    def check_detach_internet_gateway(self, params: dict[str, Any]) -> None:
        vpc_id = params["VpcId"]
        mapped = [i for i in self._live_instances([{"Name": "vpc-id", "Values": [vpc_id]}]) if i.get("PublicIpAddress")]
        if mapped:
            message = f"Network {vpc_id} has some mapped public address(es). Please unmap those public address(es)"
            raise aws_error("DetachInternetGateway", "DependencyViolation", message)

    def check_delete_internet_gateway(self, params: dict[str, Any]) -> None:
        gateway_id = params["InternetGatewayId"]
        gateway = self.client("ec2").describe_internet_gateways(InternetGatewayIds=[gateway_id])["InternetGateways"][0]
        if gateway.get("Attachments"):
            raise aws_error("DeleteInternetGateway", "DependencyViolation", f"{gateway_id} is still attached to a VPC")

    # ----- RDS -----
    @staticmethod
    def _check_identifier(operation: str, identifier: str, what: str) -> None:
        if not RDS_IDENTIFIER.match(identifier or ""):
            message = (
                f"The parameter {what} is not a valid identifier. Identifiers must begin with a letter; must contain "
                "only ASCII letters, digits, and hyphens; and must not end with a hyphen or contain two consecutive hyphens."
            )
            raise aws_error(operation, "InvalidParameterValue", message)

    def check_create_cluster(self, params: dict[str, Any]) -> None:
        operation, rds = "CreateDBCluster", self.client("rds")
        identifier = params.get("DBClusterIdentifier", "")
        self._check_identifier(operation, identifier, "DBClusterIdentifier")
        if any(c["DBClusterIdentifier"] == identifier.lower() for c in rds.describe_db_clusters()["DBClusters"]):
            raise aws_error(operation, "DBClusterAlreadyExistsFault", "DB Cluster already exists")
        group = params.get("DBClusterParameterGroupName")
        groups = rds.describe_db_cluster_parameter_groups()["DBClusterParameterGroups"]
        if group and group.lower() not in {g["DBClusterParameterGroupName"] for g in groups}:  # moto accepts any name
            message = f"DBClusterParameterGroup not found: {group}"
            raise aws_error(operation, "DBClusterParameterGroupNotFound", message)
        password = params.get("MasterUserPassword")
        if password is None and not params.get("ManageMasterUserPassword"):
            raise aws_error(operation, "InvalidParameterValue", "The parameter MasterUserPassword must be provided")
        if password is not None:
            if params.get("ManageMasterUserPassword"):
                message = "MasterUserPassword cannot be given when ManageMasterUserPassword is true"
                raise aws_error(operation, "InvalidParameterCombination", message)
            printable = all(32 <= ord(ch) < 127 for ch in password)
            if not 8 <= len(password) <= 41 or not printable or PASSWORD_FORBIDDEN & set(password):
                message = (
                    "The parameter MasterUserPassword is not a valid password. Only printable ASCII characters besides "
                    "'/', '@', '\"', ' ' may be used, 8 to 41 of them."
                )
                raise aws_error(operation, "InvalidParameterValue", message)
        version = params.get("EngineVersion")
        engine = self.catalog.engine.name
        if params.get("Engine") == engine and version and not self.catalog.available(version):
            raise aws_error(operation, "InvalidParameterCombination", f"Cannot find version {version} for {engine}")
        group = params.get("DBSubnetGroupName")
        if group and group not in [g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]]:
            raise aws_error(operation, "DBSubnetGroupNotFoundFault", f"DBSubnetGroup {group} not found")
        groups = params.get("VpcSecurityGroupIds", [])
        known = {g["GroupId"] for g in self.client("ec2").describe_security_groups()["SecurityGroups"]}
        if set(groups) - known:
            raise aws_error(
                operation,
                "InvalidParameterValue",
                f"Invalid security group ids: {sorted(set(groups) - known)}",
            )

    def check_create_db_instance(self, params: dict[str, Any]) -> None:
        operation, rds = "CreateDBInstance", self.client("rds")
        identifier = params.get("DBInstanceIdentifier", "")
        self._check_identifier(operation, identifier, "DBInstanceIdentifier")
        if any(i["DBInstanceIdentifier"] == identifier.lower() for i in rds.describe_db_instances()["DBInstances"]):
            raise aws_error(operation, "DBInstanceAlreadyExists", "DB instance already exists")
        cluster = params.get("DBClusterIdentifier")
        if cluster and cluster not in [c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]]:
            raise aws_error(operation, "DBClusterNotFoundFault", f"DBCluster {cluster} not found")
        if params.get("Engine") == self.catalog.engine.name and (
            params.get("DBInstanceClass") not in self.catalog.classes
            or params.get("DBInstanceClass") in self.catalog.unorderable
        ):
            message = f"RDS does not support creating a DB instance with the class {params.get('DBInstanceClass')}"
            raise aws_error(operation, "InvalidParameterCombination", message)

    def check_create_subnet_group(self, params: dict[str, Any]) -> None:
        operation, rds = "CreateDBSubnetGroup", self.client("rds")
        name = params.get("DBSubnetGroupName", "")
        if name.lower() in [g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]]:
            raise aws_error(operation, "DBSubnetGroupAlreadyExists", f"The DB subnet group '{name}' already exists")
        subnets = self.client("ec2").describe_subnets(SubnetIds=params.get("SubnetIds", []))["Subnets"]
        if len({s["AvailabilityZone"] for s in subnets}) < 2:
            message = "The DB subnet group doesn't meet Availability Zone (AZ) coverage requirement"
            raise aws_error(operation, "DBSubnetGroupDoesNotCoverEnoughAZs", message)

    def check_delete_subnet_group(self, params: dict[str, Any]) -> None:
        name, rds = params["DBSubnetGroupName"], self.client("rds")
        users = [c for c in rds.describe_db_clusters()["DBClusters"] if c.get("DBSubnetGroup") == name]
        users += [
            i
            for i in rds.describe_db_instances()["DBInstances"]
            if i.get("DBSubnetGroup", {}).get("DBSubnetGroupName") == name
        ]
        if users:
            message = f"Cannot delete the subnet group '{name}' because at least one database is still using it."
            raise aws_error("DeleteDBSubnetGroup", "InvalidDBSubnetGroupStateFault", message)

    def check_delete_cluster_parameter_group(self, params: dict[str, Any]) -> None:
        """RDS API reference, DeleteDBClusterParameterGroup: a group a cluster uses cannot be deleted (moto deletes
        it)."""
        name, rds = params["DBClusterParameterGroupName"].lower(), self.client("rds")
        if any(
            str(c.get("DBClusterParameterGroup", "")).lower() == name for c in rds.describe_db_clusters()["DBClusters"]
        ):
            message = f"One or more database clusters are still members of this parameter group {name}"
            raise aws_error("DeleteDBClusterParameterGroup", "InvalidDBParameterGroupState", message)

    def check_delete_cluster(self, params: dict[str, Any]) -> None:
        operation, identifier = "DeleteDBCluster", params["DBClusterIdentifier"]
        clusters = [
            c for c in self.client("rds").describe_db_clusters()["DBClusters"] if c["DBClusterIdentifier"] == identifier
        ]
        if clusters and clusters[0].get("DeletionProtection"):
            message = "Cannot delete protected Cluster, please disable deletion protection and try again."
            raise aws_error(operation, "InvalidParameterCombination", message)
        members = [m["DBInstanceIdentifier"] for m in (clusters[0].get("DBClusterMembers", []) if clusters else [])]
        instances = self.client("rds").describe_db_instances()["DBInstances"]
        live = [
            i for i in instances if i["DBInstanceIdentifier"] in members and i.get("DBInstanceStatus") != "deleting"
        ]
        if live:  # RDS API reference, DeleteDBCluster: InvalidDBClusterStateFault
            message = "Cluster cannot be deleted, it still contains DB instances in non-deleting state."
            raise aws_error(operation, "InvalidDBClusterStateFault", message)
        if not params.get("SkipFinalSnapshot") and not params.get("FinalDBSnapshotIdentifier"):
            message = "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified."
            raise aws_error(operation, "InvalidParameterCombination", message)

    def _cluster_created(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.slow_cluster_polls and "DBCluster" in parsed:
            with self._lock:
                self.creating_polls[parsed["DBCluster"]["DBClusterIdentifier"]] = self.slow_cluster_polls

    def _report_creating(self, parsed: dict[str, Any], **_: Any) -> None:
        """Make a new cluster say 'creating' for a few polls, as a real one does for minutes."""
        with self._lock:
            for cluster in parsed.get("DBClusters", []):
                left = self.creating_polls.get(cluster["DBClusterIdentifier"], 0)
                if left > 0:
                    self.creating_polls[cluster["DBClusterIdentifier"]] = left - 1
                    cluster["Status"] = "creating"

    # ----- IAM -----
    @staticmethod
    def _remember_path_prefix(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["strict_path_prefix"] = params.get("PathPrefix", "/")

    @staticmethod
    def _filter_by_path_prefix(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """AWS lists only the profiles under PathPrefix; moto ignores it for ListInstanceProfiles."""
        prefix = context.get("strict_path_prefix", "/")
        parsed["InstanceProfiles"] = [p for p in parsed.get("InstanceProfiles", []) if p["Path"].startswith(prefix)]

    def check_delete_role(self, params: dict[str, Any]) -> None:
        """IAM API reference, DeleteRole: out of every instance profile first, managed policies detached, inline
        policies deleted; else DeleteConflict."""
        iam, name = self.client("iam"), params["RoleName"]
        if iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
            message = "Cannot delete entity, must remove roles from instance profile first."
            raise aws_error("DeleteRole", "DeleteConflict", message)
        if iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            raise aws_error("DeleteRole", "DeleteConflict", "Cannot delete entity, must detach all policies first.")
        if iam.list_role_policies(RoleName=name)["PolicyNames"]:
            raise aws_error("DeleteRole", "DeleteConflict", "Cannot delete entity, must delete policies first.")

    def _profile_changing(self, params: dict[str, Any], **_: Any) -> None:
        if self.profile_lag:
            with self._lock:
                self.unseen_profiles[params["InstanceProfileName"]] = self.profile_lag

    def check_profile_seen(self, params: dict[str, Any]) -> None:
        """IAM is eventually consistent: for some seconds after a profile is made or given its role, EC2 refuses it
        (IAM User Guide, "Troubleshooting IAM roles for EC2": "Invalid IAM Instance Profile name"; "Changes that I
        make are not always immediately visible")."""
        name = (params.get("IamInstanceProfile") or {}).get("Name") or ""
        with self._lock:
            left = self.unseen_profiles.get(name, 0)
            if left <= 0:
                return
            self.unseen_profiles[name] = left - 1
        message = f"Value ({name}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
        raise aws_error("RunInstances", "InvalidParameterValue", message)


class _Body:
    """The raw body of a made-up HTTP response (what botocore's parsers read)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


class Throttle:
    """AWS's rate limits: the next N attempts of an operation answered with its service's throttling error, as
    HTTP 400 on the wire, so botocore's retry handler sees them as AWS's (RDS: 12 requests per second sustained
    per account and region, FACTS.md; EC2 API reference, "Request throttling": RequestLimitExceeded; SSM and the
    JSON services: ThrottlingException). botocore retries them (labkit's clients: standard mode, max_attempts 5,
    which botocore counts as retries: 6 attempts); past that the ClientError reaches labkit.

    `throttle.next("DescribeDBClusters", 3)`; `throttle.refused` counts the throttled attempts."""

    QUERY: ClassVar[dict[str, str]] = {
        "ec2": "RequestLimitExceeded",
        "rds": "Throttling",
        "iam": "Throttling",
        "sts": "Throttling",
    }

    def __init__(self, refusals: list[tuple[str, str]], lock: threading.Lock) -> None:
        self.left: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self._refusals, self._lock = refusals, lock

    def next(self, operation: str, attempts: int) -> None:
        with self._lock:
            self.left[operation] = attempts

    def install(self, events: Any) -> None:
        events.register_first("before-send", self._send)

    # botocore runs every before-send handler and takes the first response (endpoint.py, _do_get_response), and
    # moto's own handler would still carry the request out. So a throttled attempt is sent, for moto, to a host
    # no handler serves: moto leaves it alone and this answer is the one botocore reads. botocore sends the same
    # request object again on a retry; its address is put back before moto sees the next attempt.
    NOWHERE = "https://throttled.labkit.invalid/"

    def _send(self, request: Any, event_name: str, **_: Any) -> Any:
        service, operation = event_name.split(".")[1:3]
        if request.url == self.NOWHERE:
            request.url = request.labkit_url
        with self._lock:
            if self.left.get(operation, 0) <= 0:
                return None
            self.left[operation] -= 1
            self.refused[operation] = self.refused.get(operation, 0) + 1
        request.labkit_url, request.url = request.url, self.NOWHERE
        code = self.QUERY.get(service, "ThrottlingException")
        self._refusals.append((operation, code))
        if service == "ec2":
            body = f"<Response><Errors><Error><Code>{code}</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>"
        elif service in self.QUERY:
            body = f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>Rate exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>"
        else:
            body = json.dumps({"__type": code, "message": "Rate exceeded"})
        from botocore.awsrequest import AWSResponse

        return AWSResponse(request.labkit_url, 400, {"x-amzn-RequestId": "x"}, _Body(body.encode()))


class UserBoundaries:
    """The permissions boundary of IAM users, which moto does not keep: its CreateUser drops PermissionsBoundary,
    its GetUser never returns one, and PutUserPermissionsBoundary is not implemented. AWS keeps it, returns it in
    GetUser's `User.PermissionsBoundary`, and evaluates the user's requests against it (IAM API reference,
    CreateUser, PutUserPermissionsBoundary; IAM User Guide, "Permissions boundaries for IAM entities").

    One store per moto account; `install(events)` on every botocore session that talks to that account, before
    the session makes a client (a client copies the session's handlers when it is made)."""

    def __init__(self) -> None:
        self.by_user: dict[str, str] = {}
        self._lock = threading.Lock()

    def install(self, events: Any) -> UserBoundaries:
        events.register("before-parameter-build.iam.CreateUser", _keep_params)
        events.register("after-call.iam.CreateUser", self._created)
        events.register("after-call.iam.GetUser", self._show)
        events.register("before-parameter-build.iam.DeleteUser", _keep_params)
        events.register("after-call.iam.DeleteUser", self._deleted)
        events.register("before-parameter-build.iam.PutUserPermissionsBoundary", _keep_params)
        events.register("before-call.iam.PutUserPermissionsBoundary", _answer_from(self._put))
        events.register("before-parameter-build.iam.DeleteUserPermissionsBoundary", _keep_params)
        events.register("before-call.iam.DeleteUserPermissionsBoundary", _answer_from(self._remove))
        return self

    def _created(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        boundary = context.get("strict_params", {}).get("PermissionsBoundary")
        if boundary and "User" in parsed:
            with self._lock:
                self.by_user[parsed["User"]["UserName"]] = boundary
            self._show(parsed)

    def _show(self, parsed: dict[str, Any], **_: Any) -> None:
        user = parsed.get("User")
        with self._lock:
            boundary = self.by_user.get(user["UserName"]) if user else None
        if boundary:
            user["PermissionsBoundary"] = {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": boundary}

    def _deleted(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.by_user.pop(context.get("strict_params", {}).get("UserName", ""), None)

    def _put(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.by_user[params["UserName"]] = params["PermissionsBoundary"]
        return {}

    def _remove(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.by_user.pop(params["UserName"], None)
        return {}


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["strict_params"] = dict(params)


def _answer_from(answer: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    """A before-call handler that answers the request itself: botocore then sends nothing (moto included)."""

    def handler(context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        parsed = answer(context.get("strict_params", {}))
        parsed["ResponseMetadata"] = {"HTTPStatusCode": 200}
        return SimpleNamespace(status_code=200, headers={}), parsed

    return handler


def install_strict_layer(backend: Backend, **options: Any) -> StrictLayer:
    """Make `backend` refuse what AWS refuses (see StrictLayer)."""
    return StrictLayer(backend, **options).install()
