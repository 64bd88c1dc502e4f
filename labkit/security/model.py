"""The facts the security views reason about: plain, immutable records built from AWS descriptions.

Everything here is pure data. `snapshot.py` fills it from the APIs; the tables, the lint and the
reachability engine only read it, so they can run many times against one snapshot without an API call.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALL_PORTS = (0, 65535)
WORLD_CIDRS = ("0.0.0.0/0", "::/0")
PROTOCOL_NAMES = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}


def protocol_name(protocol: str | int | None) -> str:
    """'tcp', 'udp', 'icmp', 'icmpv6', 'all' or the raw protocol number, from any AWS spelling."""
    text = str(protocol if protocol is not None else "-1").lower()
    return PROTOCOL_NAMES.get(text, text)


def network(cidr: str) -> Network:
    """A CIDR (or a bare address) as an ip_network, host bits allowed."""
    return ipaddress.ip_network(cidr, strict=False)


def contains(outer: str | Network, inner: Network) -> bool:
    """True when every address of `inner` lies in `outer` (False across IP versions)."""
    outer_net = network(outer) if isinstance(outer, str) else outer
    return outer_net.version == inner.version and inner.subnet_of(outer_net)  # type: ignore[arg-type]


def overlaps(outer: str | Network, inner: Network) -> bool:
    """True when `outer` and `inner` share at least one address (False across IP versions)."""
    outer_net = network(outer) if isinstance(outer, str) else outer
    return outer_net.version == inner.version and outer_net.overlaps(inner)  # type: ignore[arg-type]


def _port_span(protocol: str, from_port: int | None, to_port: int | None) -> tuple[int, int] | None:
    """The TCP/UDP port range a rule covers, or None for protocols without ports (icmp)."""
    if protocol == "all":
        return ALL_PORTS
    if protocol not in ("tcp", "udp"):
        return None
    if from_port is None or to_port is None or from_port < 0:
        return ALL_PORTS
    return (from_port, to_port)


def _span_text(span: tuple[int, int] | None) -> str:
    if span is None:
        return "-"
    if span == ALL_PORTS:
        return "all"
    return str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"


@dataclass(frozen=True)
class Group:
    """A security group."""

    group_id: str
    name: str
    vpc_id: str | None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.group_id})"


@dataclass(frozen=True)
class Rule:
    """One security-group rule: direction, protocol and ports, and one peer (CIDR, group or prefix list)."""

    rule_id: str
    group_id: str
    egress: bool
    protocol: str
    from_port: int | None
    to_port: int | None
    cidr: str | None = None
    group_ref: str | None = None
    prefix_list: str | None = None
    description: str = ""

    @property
    def direction(self) -> str:
        return "egress" if self.egress else "ingress"

    @property
    def span(self) -> tuple[int, int] | None:
        return _port_span(self.protocol, self.from_port, self.to_port)

    def covers(self, port: int, protocol: str = "tcp") -> bool:
        """True when this rule's protocol and ports include `protocol` `port`."""
        if self.protocol not in ("all", protocol):
            return False
        span = self.span
        return span is not None and span[0] <= port <= span[1]

    @property
    def all_ports(self) -> bool:
        return self.span == ALL_PORTS

    @property
    def world_open(self) -> bool:
        return self.cidr in WORLD_CIDRS


@dataclass(frozen=True)
class Instance:
    """An EC2 instance, as far as networking and metadata options go."""

    instance_id: str
    name: str
    state: str
    vpc_id: str | None
    subnet_id: str | None
    private_ip: str | None
    public_ip: str | None
    group_ids: tuple[str, ...]
    http_tokens: str = "required"
    http_endpoint: str = "enabled"
    tags: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.instance_id})" if self.name != self.instance_id else self.instance_id


@dataclass(frozen=True)
class Database:
    """An RDS / Aurora DB instance: its groups, its subnet, whether it is public and encrypted."""

    identifier: str
    cluster_id: str | None
    is_writer: bool
    group_ids: tuple[str, ...]
    vpc_id: str | None
    subnet_id: str | None
    publicly_accessible: bool
    storage_encrypted: bool
    address: str | None
    port: int

    @property
    def label(self) -> str:
        return self.identifier


@dataclass(frozen=True)
class Cluster:
    """An Aurora cluster: its endpoints and members."""

    identifier: str
    endpoint: str | None
    reader_endpoint: str | None
    port: int
    group_ids: tuple[str, ...]
    storage_encrypted: bool
    writer: str | None
    readers: tuple[str, ...]


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    cidr: str
    availability_zone: str
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.subnet_id})" if self.name else self.subnet_id


@dataclass(frozen=True)
class Route:
    destination: str
    target: str
    state: str = "active"


@dataclass(frozen=True)
class RouteTable:
    route_table_id: str
    vpc_id: str
    main: bool
    subnet_ids: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class AclEntry:
    """One network ACL entry; entries are evaluated lowest rule number first, the first match decides."""

    rule_number: int
    egress: bool
    protocol: str
    from_port: int | None
    to_port: int | None
    cidr: str
    allow: bool

    @property
    def span(self) -> tuple[int, int] | None:
        return _port_span(self.protocol, self.from_port, self.to_port)

    @property
    def number_text(self) -> str:
        return "*" if self.rule_number >= 32767 else str(self.rule_number)

    def text(self) -> str:
        ports = _span_text(self.span)
        action = "allow" if self.allow else "deny"
        peer = "to" if self.egress else "from"
        return f"#{self.number_text} {action} {self.protocol} {ports} {peer} {self.cidr}"


@dataclass(frozen=True)
class NetworkAcl:
    acl_id: str
    vpc_id: str
    default: bool
    subnet_ids: tuple[str, ...]
    entries: tuple[AclEntry, ...]


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidrs: tuple[str, ...]
    name: str = ""


@dataclass(frozen=True)
class Peering:
    peering_id: str
    vpc_ids: frozenset[str]
    active: bool


@dataclass(frozen=True)
class LabScope:
    """Which resources belong to the lab: its groups by node, instances and cluster."""

    lab: str
    learner: str
    group_nodes: dict[str, str] = field(default_factory=dict)  # group id -> labkit:node value
    instance_ids: tuple[str, ...] = ()
    cluster_id: str | None = None
    db_port: int | None = None  # the lab engine's port (its cluster's once it exists; its config's before)

    def group_for(self, node: str) -> str | None:
        """The id of the lab group tagged with `node`, if there is exactly one."""
        found = [gid for gid, value in self.group_nodes.items() if value == node]
        return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Snapshot:
    """Everything the security views need, described once; the views never call AWS themselves."""

    groups: dict[str, Group] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    instances: dict[str, Instance] = field(default_factory=dict)
    databases: dict[str, Database] = field(default_factory=dict)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    route_tables: tuple[RouteTable, ...] = ()
    acls: tuple[NetworkAcl, ...] = ()
    vpcs: dict[str, Vpc] = field(default_factory=dict)
    internet_gateways: dict[str, tuple[str, ...]] = field(default_factory=dict)  # igw id -> VPC ids
    peerings: tuple[Peering, ...] = ()
    attached_group_ids: frozenset[str] = frozenset()
    scope: LabScope | None = None
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)

    def group_name(self, group_id: str) -> str:
        group = self.groups.get(group_id)
        return group.name if group else group_id

    def group_label(self, group_id: str) -> str:
        group = self.groups.get(group_id)
        return group.label if group else group_id

    def rules_of(self, group_id: str, *, egress: bool) -> list[Rule]:
        return [r for r in self.rules if r.group_id == group_id and r.egress == egress]

    def route_table_for(self, subnet_id: str) -> RouteTable | None:
        """The subnet's explicitly associated route table, else its VPC's main route table."""
        for table in self.route_tables:
            if subnet_id in table.subnet_ids:
                return table
        subnet = self.subnets.get(subnet_id)
        vpc_id = subnet.vpc_id if subnet else None
        return next((t for t in self.route_tables if t.vpc_id == vpc_id and t.main), None)

    def acl_for(self, subnet_id: str) -> NetworkAcl | None:
        """The subnet's network ACL (explicit association, else its VPC's default ACL)."""
        for acl in self.acls:
            if subnet_id in acl.subnet_ids:
                return acl
        subnet = self.subnets.get(subnet_id)
        vpc_id = subnet.vpc_id if subnet else None
        return next((a for a in self.acls if a.vpc_id == vpc_id and a.default), None)

    def gateways_of(self, vpc_id: str) -> list[str]:
        """Internet gateways attached to the VPC."""
        return sorted(igw for igw, vpcs in self.internet_gateways.items() if vpc_id in vpcs)

    def peering_between(self, vpc_a: str, vpc_b: str) -> Peering | None:
        wanted = frozenset((vpc_a, vpc_b))
        return next((p for p in self.peerings if p.vpc_ids == wanted and p.active), None)


def lab_group_ids(snapshot: Snapshot) -> list[str]:
    """The lab's own groups, plus any group attached to the lab's instance or databases."""
    found = set(snapshot.scope.group_nodes) if snapshot.scope else set()
    for holder in [*snapshot.instances.values(), *snapshot.databases.values()]:
        found.update(holder.group_ids)
    return sorted(found)
