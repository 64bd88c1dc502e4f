"""Network: the VPC, its subnets, the internet gateway and public route table, and the two security groups.

The `db` group admits the database (the lab engine's port) only from the `app` group (a group reference,
never a CIDR); the `app` group admits nothing unless SSH from one /32 is asked for, and sends out only HTTPS
(SSM, packages) and the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from labkit.aws.errors import is_not_found
from labkit.aws.tags import NODE_INTERNET_GATEWAY, NODE_PUBLIC_SUBNET, NODE_SG_APP, NODE_SG_DB, NODE_VPC
from labkit.engines import engine_of
from labkit.errors import LabkitError
from labkit.lab.resources.base import Adopted, Change, Found, LabContext, Resource, ResourceType, paginate
from labkit.lab.resources.registry import Describe, TaggedCreate, register

ANYWHERE = "0.0.0.0/0"
NODE_LEFTOVER_INTERFACES = "network-interfaces"  # not made by apply; destroy removes detached ones


def _ec2(ctx: LabContext) -> Any:
    return ctx.client("ec2")


def availability_zones(ctx: LabContext) -> list[str]:
    """Available zones of the region, sorted, preferring those that offer the configured instance type."""

    def compute() -> list[str]:
        ec2 = _ec2(ctx)
        zones = ec2.describe_availability_zones(
            Filters=[
                {"Name": "state", "Values": ["available"]},
                {"Name": "zone-type", "Values": ["availability-zone"]},
            ]
        )["AvailabilityZones"]
        names = sorted(zone["ZoneName"] for zone in zones)
        offered = {
            offer["Location"]
            for offer in paginate(
                ec2,
                "describe_instance_type_offerings",
                "InstanceTypeOfferings",
                LocationType="availability-zone",
                Filters=[{"Name": "instance-type", "Values": [ctx.config.instance_type]}],
            )
        }
        preferred = [name for name in names if name in offered]
        zones_in_use = preferred if len(preferred) >= 2 else names
        if len(zones_in_use) < 2:
            raise LabkitError(
                f"{ctx.config.region} has fewer than two availability zones",
                field="region",
                fix="Aurora needs subnets in two zones; choose another region",
            )
        return zones_in_use

    return ctx.cached("zones", compute)


@register("vpc")
class Vpc(Resource):
    kind = "VPC"
    describe = Describe("ec2", "describe_vpcs", "Vpcs", "VpcId")
    stage = "network"
    tagged_create = TaggedCreate("CreateVpc", "TagSpecifications")

    @classmethod
    def keep(cls, item: dict[str, Any]) -> bool:
        return not item.get("IsDefault")  # the default VPC is never a lab's

    def create(self, ctx: LabContext) -> str:
        spec = ctx.tag_specifications(self.node, "vpc")
        return _ec2(ctx).create_vpc(CidrBlock=ctx.config.vpc_cidr, TagSpecifications=spec)["Vpc"]["VpcId"]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("ec2", "vpc_available", self.node, VpcIds=[resource_id])

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        changes = []
        for attribute in ("enableDnsSupport", "enableDnsHostnames"):  # endpoints resolve to names inside the VPC
            key = attribute[0].upper() + attribute[1:]
            if not _ec2(ctx).describe_vpc_attribute(VpcId=resource_id, Attribute=attribute)[key]["Value"]:
                turn_on = partial(_ec2(ctx).modify_vpc_attribute, VpcId=resource_id, **{key: {"Value": True}})
                changes.append(Change(f"turn on {attribute}", turn_on))
        return changes

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        ctx.retry(lambda: _ec2(ctx).delete_vpc(VpcId=resource_id), self.node)


@register("internet-gateway")
class InternetGateway(Resource):
    kind = "Internet gateway"
    describe = Describe("ec2", "describe_internet_gateways", "InternetGateways", "InternetGatewayId")
    stage = "network"
    tagged_create = TaggedCreate("CreateInternetGateway", "TagSpecifications")
    deleted_after = ("instance",)  # AWS refuses to detach it while an instance has a public address

    def create(self, ctx: LabContext) -> str:
        spec = ctx.tag_specifications(self.node, "internet-gateway")
        return _ec2(ctx).create_internet_gateway(TagSpecifications=spec)["InternetGateway"]["InternetGatewayId"]

    def _attached_vpcs(self, ctx: LabContext, gateway_id: str) -> list[str]:
        gateway = _ec2(ctx).describe_internet_gateways(InternetGatewayIds=[gateway_id])["InternetGateways"][0]
        return [a["VpcId"] for a in gateway.get("Attachments", [])]

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        if ctx.ids.get(NODE_VPC) in self._attached_vpcs(ctx, resource_id):
            return []

        def attach() -> None:
            _ec2(ctx).attach_internet_gateway(InternetGatewayId=resource_id, VpcId=ctx.id_of(NODE_VPC))

        return [Change("attach to the VPC", attach)]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("ec2", "internet_gateway_exists", self.node, InternetGatewayIds=[resource_id])

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        for vpc_id in self._attached_vpcs(ctx, resource_id):
            ctx.retry(
                lambda v=vpc_id: _ec2(ctx).detach_internet_gateway(InternetGatewayId=resource_id, VpcId=v),
                self.node,
            )
        ctx.retry(lambda: _ec2(ctx).delete_internet_gateway(InternetGatewayId=resource_id), self.node)


@register("subnet")
class Subnet(Resource):
    kind = "Subnet"
    describe = Describe("ec2", "describe_subnets", "Subnets", "SubnetId")
    stage = "network"
    tagged_create = TaggedCreate("CreateSubnet", "TagSpecifications")
    deleted_after = ("instance", "db-subnet-group")  # AWS refuses while an instance or a database is in it

    def __init__(self, node: str, depends_on: tuple[str, ...], *, cidr: str, zone_index: int, public: bool) -> None:
        super().__init__(node, depends_on)
        self.cidr = cidr
        self.zone_index = zone_index
        self.public = public

    def create(self, ctx: LabContext) -> str:
        zone = availability_zones(ctx)[self.zone_index]
        return _ec2(ctx).create_subnet(
            VpcId=ctx.id_of(NODE_VPC),
            CidrBlock=self.cidr,
            AvailabilityZone=zone,
            TagSpecifications=ctx.tag_specifications(self.node, "subnet"),
        )["Subnet"]["SubnetId"]

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        if not self.public:
            return []
        subnet = _ec2(ctx).describe_subnets(SubnetIds=[resource_id])["Subnets"][0]
        if subnet.get("MapPublicIpOnLaunch"):
            return []
        # A public address lets the SSM agent reach SSM without any inbound rule.
        make_public = partial(
            _ec2(ctx).modify_subnet_attribute, SubnetId=resource_id, MapPublicIpOnLaunch={"Value": True}
        )
        return [Change("give instances a public address", make_public)]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("ec2", "subnet_available", self.node, SubnetIds=[resource_id])

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        ctx.retry(lambda: _ec2(ctx).delete_subnet(SubnetId=resource_id), self.node)


@register("route-table")
class RouteTable(Resource):
    """The public subnet's route table: everything outside the VPC goes to the internet gateway."""

    kind = "Route table"
    describe = Describe("ec2", "describe_route_tables", "RouteTables", "RouteTableId")
    stage = "network"
    tagged_create = TaggedCreate("CreateRouteTable", "TagSpecifications")

    def create(self, ctx: LabContext) -> str:
        spec = ctx.tag_specifications(self.node, "route-table")
        return _ec2(ctx).create_route_table(VpcId=ctx.id_of(NODE_VPC), TagSpecifications=spec)["RouteTable"][
            "RouteTableId"
        ]

    def _table(self, ctx: LabContext, table_id: str) -> dict[str, Any]:
        return _ec2(ctx).describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        table, changes = self._table(ctx, resource_id), []
        gateway_id, subnet_id = ctx.ids.get(NODE_INTERNET_GATEWAY), ctx.ids.get(NODE_PUBLIC_SUBNET)
        default = [r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == ANYWHERE]
        if not default or default[0].get("GatewayId") != gateway_id:
            call = _ec2(ctx).replace_route if default else _ec2(ctx).create_route
            changes.append(
                Change("route 0.0.0.0/0 to the internet gateway", partial(self._route_out, ctx, call, resource_id))
            )
        if subnet_id is None or subnet_id not in [a.get("SubnetId") for a in table.get("Associations", [])]:
            changes.append(Change("associate with the public subnet", partial(self._associate, ctx, resource_id)))
        return changes

    @staticmethod
    def _route_out(ctx: LabContext, call: Any, table_id: str) -> None:
        call(RouteTableId=table_id, DestinationCidrBlock=ANYWHERE, GatewayId=ctx.id_of(NODE_INTERNET_GATEWAY))

    @staticmethod
    def _associate(ctx: LabContext, table_id: str) -> None:
        _ec2(ctx).associate_route_table(RouteTableId=table_id, SubnetId=ctx.id_of(NODE_PUBLIC_SUBNET))

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        for association in self._table(ctx, resource_id).get("Associations", []):
            if not association.get("Main"):
                _ec2(ctx).disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
        ctx.retry(lambda: _ec2(ctx).delete_route_table(RouteTableId=resource_id), self.node)


# ----- security groups -----


@dataclass(frozen=True)
class Rule:
    """One TCP rule the lab wants: in `group` (a node), inbound or outbound, to/from a CIDR or another group."""

    group: str
    egress: bool
    port: int
    description: str
    cidr: str | None = None
    peer: str | None = None  # node of the referenced group
    exercise: str | None = None  # the workbook exercise in which the learner writes this rule (see apply)


def _rules_of(ctx: LabContext, group_ids: list[str]) -> list[dict[str, Any]]:
    filters = [{"Name": "group-id", "Values": group_ids}]
    return paginate(_ec2(ctx), "describe_security_group_rules", "SecurityGroupRules", Filters=filters)


def _matches(existing: dict[str, Any], rule: Rule, group_id: str, peer_id: str | None) -> bool:
    if existing["GroupId"] != group_id or existing["IsEgress"] != rule.egress:
        return False
    if (
        existing.get("IpProtocol") != "tcp"
        or existing.get("FromPort") != rule.port
        or existing.get("ToPort") != rule.port
    ):
        return False
    if rule.cidr is not None:
        return existing.get("CidrIpv4") == rule.cidr
    return existing.get("ReferencedGroupInfo", {}).get("GroupId") == peer_id


def _is_allow_all_egress(existing: dict[str, Any]) -> bool:
    return existing["IsEgress"] and existing.get("IpProtocol") == "-1" and existing.get("CidrIpv4") == ANYWHERE


def _revoke(ctx: LabContext, existing: dict[str, Any]) -> None:
    revoke = _ec2(ctx).revoke_security_group_egress if existing["IsEgress"] else _ec2(ctx).revoke_security_group_ingress
    try:
        revoke(GroupId=existing["GroupId"], SecurityGroupRuleIds=[existing["SecurityGroupRuleId"]])
    except Exception as exc:  # already gone is fine
        if not is_not_found(exc):
            raise


@register("security-group")
class SecurityGroup(Resource):
    kind = "Security group"
    describe = Describe("ec2", "describe_security_groups", "SecurityGroups", "GroupId", name="GroupName")
    stage = "network"
    tagged_create = TaggedCreate("CreateSecurityGroup", "TagSpecifications")
    deleted_after = ("instance", "db-cluster", "db-instance")  # AWS refuses while anything uses the group
    description: ClassVar[str]

    def group_description(self, ctx: LabContext) -> str:
        """The group's Description (set once, when it is created)."""
        return self.description

    @classmethod
    def keep(cls, item: dict[str, Any]) -> bool:
        return item["GroupName"] != "default"  # every VPC's own group, never a lab's

    def create(self, ctx: LabContext) -> str:
        return _ec2(ctx).create_security_group(
            GroupName=ctx.name(self.node),
            Description=self.group_description(ctx),
            VpcId=ctx.id_of(NODE_VPC),
            TagSpecifications=ctx.tag_specifications(self.node, "security-group"),
        )["GroupId"]

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        ctx.wait("ec2", "security_group_exists", self.node, GroupIds=[resource_id])

    def rules(self, ctx: LabContext) -> list[Rule]:
        """The rules this step is responsible for (in its own group or, for `db`, in the `app` group)."""
        return []

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        wanted = [rule for rule in self.rules(ctx) if not (rule.exercise and ctx.leave_exercises)]
        groups = {self.node: resource_id} | {r.group: ctx.ids.get(r.group) for r in wanted}
        groups |= {r.peer: ctx.ids.get(r.peer) for r in wanted if r.peer}
        group_ids = sorted({gid for gid in groups.values() if gid})
        existing = _rules_of(ctx, group_ids)
        changes = []
        for rule in existing:  # a new group lets everything out; the lab opens only what it needs
            if rule["GroupId"] == resource_id and _is_allow_all_egress(rule):
                changes.append(Change("remove the allow-all outbound rule", partial(_revoke, ctx, rule)))
        for rule in wanted:
            group_id, peer_id = groups.get(rule.group), groups.get(rule.peer) if rule.peer else None
            if group_id and any(_matches(e, rule, group_id, peer_id) for e in existing):
                continue
            changes.append(Change(f"add rule: {rule.description}", partial(self._authorize, ctx, rule)))
        return changes

    def _authorize(self, ctx: LabContext, rule: Rule) -> None:
        """Add `rule`, between groups that exist by now (apply made them first)."""
        group_id, peer_id = ctx.id_of(rule.group), ctx.id_of(rule.peer) if rule.peer else None
        permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": rule.port, "ToPort": rule.port}
        if rule.cidr is not None:
            permission["IpRanges"] = [{"CidrIp": rule.cidr, "Description": rule.description}]
        else:
            permission["UserIdGroupPairs"] = [{"GroupId": peer_id, "Description": rule.description}]
        authorize = (
            _ec2(ctx).authorize_security_group_egress if rule.egress else _ec2(ctx).authorize_security_group_ingress
        )
        spec = ctx.tag_specifications(rule.group, "security-group-rule")
        authorize(GroupId=group_id, IpPermissions=[permission], TagSpecifications=spec)

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        """Revoke rules that reference this group (AWS refuses to delete a referenced group), then delete it."""
        lab_groups = [f.resource_id for f in SecurityGroup.list_tagged(ctx)]
        for rule in _rules_of(ctx, sorted(set(lab_groups) | {resource_id})):
            peer = rule.get("ReferencedGroupInfo", {}).get("GroupId")
            if peer and (peer == resource_id or rule["GroupId"] == resource_id):
                _revoke(ctx, rule)
        ctx.retry(lambda: _ec2(ctx).delete_security_group(GroupId=resource_id), self.node)


class AppSecurityGroup(SecurityGroup):
    description = "labkit app tier: no inbound except optional SSH from one address"

    def rules(self, ctx: LabContext) -> list[Rule]:
        wanted = [Rule(self.node, True, 443, "HTTPS out: SSM endpoints and package repositories", cidr=ANYWHERE)]
        if ctx.config.ssh_cidr:
            wanted.append(Rule(self.node, False, 22, "SSH from the learner's address", cidr=ctx.config.ssh_cidr))
        return wanted


class DbSecurityGroup(SecurityGroup):
    description = "labkit database tier: {family} from the app tier only"

    def group_description(self, ctx: LabContext) -> str:
        return self.description.format(family=engine_of(ctx.config).family)

    def rules(self, ctx: LabContext) -> list[Rule]:
        engine = engine_of(ctx.config)
        return [
            Rule(
                self.node,
                False,
                engine.port,
                f"{engine.family} from the app tier",
                peer=NODE_SG_APP,
                exercise="01.db-ingress",
            ),
            Rule(
                NODE_SG_APP,
                True,
                engine.port,
                f"{engine.family} to the database tier",
                peer=NODE_SG_DB,
                exercise="01.app-egress",
            ),
        ]


# ----- network interfaces and addresses: made with an instance (or by hand), never by apply -----


INTERFACES = Describe(  # one call lists both kinds; Status tells them apart
    "ec2", "describe_network_interfaces", "NetworkInterfaces", "NetworkInterfaceId", tags="TagSet", state="Status"
)


@register("detached-interfaces")
class LeftoverInterfaces(Resource):
    """Detached lab network interfaces (an instance's left behind): they hold their subnet and groups, so they go first."""

    kind = "Network interface (detached)"
    describe = INTERFACES
    cleanup_node = NODE_LEFTOVER_INTERFACES
    deleted_after = ("instance",)
    holds = ("subnet", "security-group")

    @classmethod
    def keep(cls, item: dict[str, Any]) -> bool:
        return item.get("Status") == "available"

    def create(self, ctx: LabContext) -> str:
        raise LabkitError("labkit never creates detached network interfaces", field=self.node)

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        ctx.retry(lambda: _ec2(ctx).delete_network_interface(NetworkInterfaceId=resource_id), self.node)


@register("network-interface")
class NetworkInterface(ResourceType):
    """Network interfaces in use, tagged at launch; they go with the instance. Listed to prove nothing is left."""

    kind = "Network interface"
    describe = INTERFACES

    @classmethod
    def keep(cls, item: dict[str, Any]) -> bool:
        return item.get("Status") != "available"


@register("elastic-ip")
class ElasticIp(ResourceType):
    """Elastic IPs: labkit makes none, but one tagged with a lab is billed by the hour, so the class view lists it."""

    kind = "Elastic IP"
    describe = Describe("ec2", "describe_addresses", "Addresses", "AllocationId", public_ip="PublicIp")

    @classmethod
    def id_of(cls, item: dict[str, Any]) -> str:
        return str(item.get("AllocationId", item.get("PublicIp", "")))


# ----- an existing VPC (the default one, or one named by id): used, never created or deleted -----


def existing_vpc(ctx: LabContext) -> dict[str, Any]:
    """The VPC the config names ('default' or an id), checked to exist."""

    def compute() -> dict[str, Any]:
        wanted = ctx.config.vpc
        if wanted == "default":
            vpcs = _ec2(ctx).describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
            if not vpcs:
                raise LabkitError(
                    f"{ctx.config.region} has no default VPC",
                    field="vpc",
                    fix="set vpc = 'create' to build one",
                )
            return vpcs[0]
        try:
            return _ec2(ctx).describe_vpcs(VpcIds=[wanted])["Vpcs"][0]
        except Exception as exc:
            if is_not_found(exc):
                raise LabkitError(
                    f"VPC {wanted} does not exist in {ctx.config.region}",
                    field="vpc",
                    fix="check the id and region, or use 'create' or 'default'",
                ) from None
            raise

    return ctx.cached("existing-vpc", compute)


def chosen_subnets(ctx: LabContext) -> dict[str, str]:
    """Subnets of an existing VPC for the lab: two zones for the database, a public one for the instance."""

    def compute() -> dict[str, str]:
        vpc_id = existing_vpc(ctx)["VpcId"]
        subnets = paginate(_ec2(ctx), "describe_subnets", "Subnets", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        subnets = sorted(subnets, key=lambda s: (s["AvailabilityZone"], s["SubnetId"]))
        first_per_zone: dict[str, str] = {}
        for subnet in subnets:
            first_per_zone.setdefault(subnet["AvailabilityZone"], subnet["SubnetId"])
        if len(first_per_zone) < 2:
            raise LabkitError(
                f"VPC {vpc_id} has subnets in {len(first_per_zone)} availability zone(s); Aurora needs two",
                field="vpc",
                fix="add a subnet in a second zone, or use vpc = 'create'",
            )
        zone_a, zone_b = list(first_per_zone.values())[:2]
        public = [s["SubnetId"] for s in subnets if s.get("MapPublicIpOnLaunch")]
        if not public:
            ctx.notes.append(f"no subnet of {vpc_id} gives public addresses: SSM needs a NAT gateway or VPC endpoints")
        return {"subnet-public": (public or [zone_a])[0], "subnet-db-a": zone_a, "subnet-db-b": zone_b}

    return ctx.cached("existing-subnets", compute)


@register("existing-vpc")
class ExistingVpc(Adopted):
    kind = "VPC (existing)"
    stage = "network"

    def find(self, ctx: LabContext) -> Found:
        vpc = existing_vpc(ctx)
        return Found(self.kind, self.node, vpc["VpcId"], vpc.get("State", ""), vpc.get("CidrBlock", ""))


@register("existing-subnet")
class ExistingSubnet(Adopted):
    kind = "Subnet (existing)"
    stage = "network"

    def find(self, ctx: LabContext) -> Found:
        return Found(self.kind, self.node, chosen_subnets(ctx)[self.node], "available")
