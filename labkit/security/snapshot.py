"""Describe, once, everything the security views need: groups and rules, the lab's instance and cluster,
and the subnets, route tables, network ACLs, gateways and peerings of the VPCs they live in.

`gather()` is the only place in labkit.security that reads AWS; the result is an immutable `Snapshot`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from labkit.aws.backend import Backend, get_backend
from labkit.aws.errors import error_code, is_not_found
from labkit.aws.tags import (
    NODE_CLUSTER,
    NODE_INSTANCE,
    NODE_VPC,
    TAG_NODE,
    cluster_roles,
    ec2_filters,
    live_instance_filter,
    resource_name,
    tag_dict,
)
from labkit.config import LabConfig
from labkit.engines import default_port
from labkit.errors import LabkitError
from labkit.security.model import (
    AclEntry,
    Cluster,
    Database,
    Group,
    Instance,
    LabScope,
    NetworkAcl,
    Peering,
    Route,
    RouteTable,
    Rule,
    Snapshot,
    Subnet,
    Vpc,
    protocol_name,
)

FILTER_CHUNK = 100


def lab_config(config: Any | None) -> Any:
    """The given config, or the default lab config (`LabConfig.load()`) when None."""
    return config if config is not None else LabConfig.load()


def backend_for(config: Any | None, backend: Backend | None) -> Backend:
    """The given backend, or the one the config names (its backend and region)."""
    if backend is not None:
        return backend
    return get_backend(getattr(config, "backend", None), region=getattr(config, "region", None))


def _pages(client: Any, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item under `key` across all pages of `operation`."""
    if client.can_paginate(operation):
        for page in client.get_paginator(operation).paginate(**params):
            yield from page.get(key, [])
    else:
        yield from getattr(client, operation)(**params).get(key, [])


def _chunks(values: Iterable[str], size: int = FILTER_CHUNK) -> Iterator[list[str]]:
    items = sorted(set(values))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _filtered(client: Any, operation: str, key: str, name: str, values: Iterable[str]) -> list[dict[str, Any]]:
    """Describe with one filter whose values come in chunks (AWS caps filter values per call)."""
    found: list[dict[str, Any]] = []
    for chunk in _chunks(values):
        found.extend(_pages(client, operation, key, Filters=[{"Name": name, "Values": chunk}]))
    return found


# --- EC2 records -------------------------------------------------------------------------------------


def _group(raw: dict[str, Any]) -> Group:
    tags = tag_dict(raw.get("Tags"))
    return Group(
        raw["GroupId"],
        raw.get("GroupName", raw["GroupId"]),
        raw.get("VpcId"),
        raw.get("Description", ""),
        tags,
    )


def _peer_key(rule: Rule) -> tuple[Any, ...]:
    return (
        rule.group_id,
        rule.egress,
        rule.protocol,
        rule.from_port,
        rule.to_port,
        rule.cidr,
        rule.group_ref,
    )


def _rule(raw: dict[str, Any]) -> Rule:
    referenced = raw.get("ReferencedGroupInfo") or {}
    return Rule(
        rule_id=raw["SecurityGroupRuleId"],
        group_id=raw["GroupId"],
        egress=bool(raw.get("IsEgress")),
        protocol=protocol_name(raw.get("IpProtocol")),
        from_port=raw.get("FromPort"),
        to_port=raw.get("ToPort"),
        cidr=raw.get("CidrIpv4") or raw.get("CidrIpv6"),
        group_ref=referenced.get("GroupId"),
        prefix_list=raw.get("PrefixListId"),
        description=raw.get("Description", "") or "",
    )


def _permission_descriptions(raw_groups: Iterable[dict[str, Any]]) -> dict[tuple[Any, ...], str]:
    """Descriptions from IpPermissions, keyed like `_peer_key` (some APIs leave them out of the rule list)."""
    found: dict[tuple[Any, ...], str] = {}
    for raw in raw_groups:
        for egress, key in ((False, "IpPermissions"), (True, "IpPermissionsEgress")):
            for perm in raw.get(key, []):
                base = (raw["GroupId"], egress, protocol_name(perm.get("IpProtocol")))
                ports = (perm.get("FromPort"), perm.get("ToPort"))
                for pair in perm.get("UserIdGroupPairs", []):
                    found[(*base, *ports, None, pair.get("GroupId"))] = pair.get("Description", "")
                for item in perm.get("IpRanges", []):
                    found[(*base, *ports, item.get("CidrIp"), None)] = item.get("Description", "")
                for item in perm.get("Ipv6Ranges", []):
                    found[(*base, *ports, item.get("CidrIpv6"), None)] = item.get("Description", "")
    return found


def _with_descriptions(rules: list[Rule], raw_groups: list[dict[str, Any]]) -> list[Rule]:
    descriptions = _permission_descriptions(raw_groups)
    out = []
    for rule in rules:
        if not rule.description and descriptions.get(_peer_key(rule)):
            rule = dataclasses.replace(rule, description=descriptions[_peer_key(rule)])
        out.append(rule)
    return out


def _instance(raw: dict[str, Any]) -> Instance:
    tags = tag_dict(raw.get("Tags"))
    group_ids = {g["GroupId"] for g in raw.get("SecurityGroups", [])}
    for eni in raw.get("NetworkInterfaces", []):
        group_ids.update(g["GroupId"] for g in eni.get("Groups", []))
    options = raw.get("MetadataOptions") or {}
    return Instance(
        instance_id=raw["InstanceId"],
        name=tags.get("Name", raw["InstanceId"]),
        state=(raw.get("State") or {}).get("Name", "unknown"),
        vpc_id=raw.get("VpcId"),
        subnet_id=raw.get("SubnetId"),
        private_ip=raw.get("PrivateIpAddress"),
        public_ip=raw.get("PublicIpAddress"),
        group_ids=tuple(sorted(group_ids)),
        http_tokens=options.get("HttpTokens", "optional"),
        http_endpoint=options.get("HttpEndpoint", "enabled"),
        tags=tags,
    )


def _subnet(raw: dict[str, Any]) -> Subnet:
    name = tag_dict(raw.get("Tags")).get("Name", "")
    return Subnet(raw["SubnetId"], raw["VpcId"], raw["CidrBlock"], raw.get("AvailabilityZone", ""), name)


def _route_target(raw: dict[str, Any]) -> str:
    for key in (
        "GatewayId",
        "NatGatewayId",
        "VpcPeeringConnectionId",
        "TransitGatewayId",
        "NetworkInterfaceId",
        "InstanceId",
        "EgressOnlyInternetGatewayId",
    ):
        if raw.get(key):
            return raw[key]
    return "unknown"


def _route_table(raw: dict[str, Any]) -> RouteTable:
    associations = raw.get("Associations", [])
    routes = tuple(
        Route(
            r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock", ""),
            _route_target(r),
            r.get("State", "active"),
        )
        for r in raw.get("Routes", [])
        if r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock")
    )
    return RouteTable(
        route_table_id=raw["RouteTableId"],
        vpc_id=raw["VpcId"],
        main=any(a.get("Main") for a in associations),
        subnet_ids=tuple(a["SubnetId"] for a in associations if a.get("SubnetId")),
        routes=routes,
    )


def _acl_entry(raw: dict[str, Any]) -> AclEntry:
    ports = raw.get("PortRange") or {}
    return AclEntry(
        rule_number=int(raw["RuleNumber"]),
        egress=bool(raw.get("Egress")),
        protocol=protocol_name(raw.get("Protocol")),
        from_port=ports.get("From"),
        to_port=ports.get("To"),
        cidr=raw.get("CidrBlock") or raw.get("Ipv6CidrBlock", ""),
        allow=raw.get("RuleAction") == "allow",
    )


def _acl(raw: dict[str, Any]) -> NetworkAcl:
    entries = sorted((_acl_entry(e) for e in raw.get("Entries", [])), key=lambda e: (e.egress, e.rule_number))
    return NetworkAcl(
        acl_id=raw["NetworkAclId"],
        vpc_id=raw["VpcId"],
        default=bool(raw.get("IsDefault")),
        subnet_ids=tuple(a["SubnetId"] for a in raw.get("Associations", []) if a.get("SubnetId")),
        entries=tuple(entries),
    )


def _peering(raw: dict[str, Any]) -> Peering:
    vpcs = frozenset(
        v
        for v in (
            (raw.get("RequesterVpcInfo") or {}).get("VpcId"),
            (raw.get("AccepterVpcInfo") or {}).get("VpcId"),
        )
        if v
    )
    return Peering(raw["VpcPeeringConnectionId"], vpcs, (raw.get("Status") or {}).get("Code") == "active")


# --- RDS records -------------------------------------------------------------------------------------


def _group_ids(raw: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(g["VpcSecurityGroupId"] for g in raw.get("VpcSecurityGroups", [])))


def _cluster(raw: dict[str, Any]) -> Cluster:
    writer, readers = cluster_roles(raw)
    return Cluster(
        identifier=raw["DBClusterIdentifier"],
        endpoint=raw.get("Endpoint"),
        reader_endpoint=raw.get("ReaderEndpoint"),
        port=int(raw.get("Port") or default_port(raw.get("Engine"))),
        group_ids=_group_ids(raw),
        storage_encrypted=bool(raw.get("StorageEncrypted")),
        writer=writer,
        readers=readers,
    )


class _Gatherer:
    """Collects raw descriptions for one snapshot; one instance per `gather()` call."""

    def __init__(self, backend: Backend) -> None:
        self.ec2 = backend.client("ec2")
        self.rds = backend.client("rds")
        self.raw_groups: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, Instance] = {}
        self.databases: dict[str, Database] = {}
        self.clusters: dict[str, Cluster] = {}
        self.vpc_ids: set[str] = set()
        self.db_subnets: dict[str, tuple[str | None, list[Subnet]]] = {}

    # groups
    def groups_by_filter(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = list(_pages(self.ec2, "describe_security_groups", "SecurityGroups", Filters=filters))
        self.raw_groups.update({g["GroupId"]: g for g in found})
        return found

    def groups_by_id(self, group_ids: Iterable[str], *, required: bool) -> None:
        missing = sorted(set(group_ids) - set(self.raw_groups))
        for group_id in missing:
            try:
                found = self.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
            except ClientError as exc:
                if required:
                    raise LabkitError(
                        f"security group {group_id} was not found ({error_code(exc)})",
                        field="group_ids",
                        fix="check the id and the region (labkit looks in the backend's region)",
                    ) from exc
                continue
            self.raw_groups.update({g["GroupId"]: g for g in found})

    # instances
    def instances_by(self, **params: Any) -> list[Instance]:
        found = [
            _instance(raw)
            for reservation in _pages(self.ec2, "describe_instances", "Reservations", **params)
            for raw in reservation.get("Instances", [])
        ]
        found = [i for i in found if i.state not in ("terminated", "shutting-down")]
        self.instances.update({i.instance_id: i for i in found})
        return found

    # databases
    def cluster(self, identifier: str) -> Cluster | None:
        try:
            raw = self.rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"]
        except ClientError as exc:
            if is_not_found(exc):  # DBClusterNotFoundFault
                return None
            raise
        if not raw:
            return None
        cluster = _cluster(raw[0])
        self.clusters[cluster.identifier] = cluster
        members = [cluster.writer, *cluster.readers]
        self.db_instances([m for m in members if m], cluster, raw[0].get("DBSubnetGroup"))
        return cluster

    def db_instances(self, identifiers: Iterable[str], cluster: Cluster | None, subnet_group: str | None) -> None:
        for identifier in identifiers:
            try:
                raws = self.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
            except ClientError as exc:
                if is_not_found(exc):  # DBInstanceNotFound
                    continue
                raise
            for raw in raws:
                cluster_id = raw.get("DBClusterIdentifier")
                if cluster is None and cluster_id:
                    if cluster_id not in self.clusters:
                        self.cluster(cluster_id)  # describes every member, this one included
                    continue
                self.databases[raw["DBInstanceIdentifier"]] = self._database(raw, cluster, subnet_group)

    def _subnet_group(self, raw: dict[str, Any], name: str | None) -> tuple[str | None, list[Subnet]]:
        described = raw.get("DBSubnetGroup") or {}
        name = described.get("DBSubnetGroupName") or name
        if not name:
            return None, []
        if name not in self.db_subnets:
            if not described.get("Subnets"):
                try:
                    described = self.rds.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"][0]
                except (ClientError, IndexError):
                    described = {}
            subnet_ids = [s["SubnetIdentifier"] for s in described.get("Subnets", [])]
            subnets = [_subnet(s) for s in _filtered(self.ec2, "describe_subnets", "Subnets", "subnet-id", subnet_ids)]
            self.db_subnets[name] = (described.get("VpcId"), subnets)
        return self.db_subnets[name]

    def _database(self, raw: dict[str, Any], cluster: Cluster | None, subnet_group: str | None) -> Database:
        vpc_id, subnets = self._subnet_group(raw, subnet_group)
        zone = raw.get("AvailabilityZone")
        in_zone = sorted((s for s in subnets if s.availability_zone == zone), key=lambda s: s.subnet_id)
        chosen = (in_zone or sorted(subnets, key=lambda s: s.subnet_id) or [None])[0]
        is_writer = bool(cluster and cluster.writer == raw["DBInstanceIdentifier"])
        endpoint = raw.get("Endpoint") or {}
        return Database(
            identifier=raw["DBInstanceIdentifier"],
            cluster_id=raw.get("DBClusterIdentifier"),
            is_writer=is_writer or cluster is None,
            group_ids=_group_ids(raw) or (cluster.group_ids if cluster else ()),
            vpc_id=vpc_id or (chosen.vpc_id if chosen else None),
            subnet_id=chosen.subnet_id if chosen else None,
            publicly_accessible=bool(raw.get("PubliclyAccessible")),
            storage_encrypted=bool(raw.get("StorageEncrypted")),
            address=endpoint.get("Address"),
            port=int(endpoint.get("Port") or raw.get("DbInstancePort") or default_port(raw.get("Engine"))),
        )

    # networks
    def network(self) -> dict[str, Any]:
        vpcs = sorted(self.vpc_ids)
        if not vpcs:
            return {}
        ec2 = self.ec2
        peerings = {
            p["VpcPeeringConnectionId"]: p
            for name in ("requester-vpc-info.vpc-id", "accepter-vpc-info.vpc-id")
            for p in _filtered(ec2, "describe_vpc_peering_connections", "VpcPeeringConnections", name, vpcs)
        }
        gateways = _filtered(ec2, "describe_internet_gateways", "InternetGateways", "attachment.vpc-id", vpcs)
        return {
            "vpcs": {
                v["VpcId"]: Vpc(
                    v["VpcId"],
                    tuple(sorted({v["CidrBlock"], *(a["CidrBlock"] for a in v.get("CidrBlockAssociationSet", []))})),
                    tag_dict(v.get("Tags")).get("Name", ""),
                )
                for v in _filtered(ec2, "describe_vpcs", "Vpcs", "vpc-id", vpcs)
            },
            "subnets": {
                s.subnet_id: s for s in map(_subnet, _filtered(ec2, "describe_subnets", "Subnets", "vpc-id", vpcs))
            },
            "route_tables": tuple(
                _route_table(t) for t in _filtered(ec2, "describe_route_tables", "RouteTables", "vpc-id", vpcs)
            ),
            "acls": tuple(_acl(a) for a in _filtered(ec2, "describe_network_acls", "NetworkAcls", "vpc-id", vpcs)),
            "internet_gateways": {
                g["InternetGatewayId"]: tuple(a["VpcId"] for a in g.get("Attachments", [])) for g in gateways
            },
            "peerings": tuple(_peering(p) for p in peerings.values()),
        }

    def rules(self) -> list[Rule]:
        group_ids = list(self.raw_groups)
        raw = _filtered(self.ec2, "describe_security_group_rules", "SecurityGroupRules", "group-id", group_ids)
        rules = _with_descriptions([_rule(r) for r in raw], list(self.raw_groups.values()))
        unique = {r.rule_id: r for r in rules}
        return sorted(unique.values(), key=lambda r: (r.group_id, r.egress, r.rule_id))

    def attached(self, group_ids: Iterable[str]) -> frozenset[str]:
        """Groups in use by a network interface, an instance or a database."""
        wanted = set(group_ids)
        used: set[str] = set()
        for eni in _filtered(self.ec2, "describe_network_interfaces", "NetworkInterfaces", "group-id", wanted):
            used.update(g["GroupId"] for g in eni.get("Groups", []))
        for holder in [*self.instances.values(), *self.databases.values(), *self.clusters.values()]:
            used.update(holder.group_ids)
        return frozenset(used)


def _lab_scope(gatherer: _Gatherer, config: Any) -> LabScope:
    """Find the lab's groups, instances and cluster by tags and names."""
    lab, learner = config.lab, config.learner
    groups = gatherer.groups_by_filter(ec2_filters(lab, learner))
    group_nodes = {g["GroupId"]: tag_dict(g.get("Tags")).get(TAG_NODE, "") for g in groups}
    instance_filters = [*ec2_filters(lab, learner, NODE_INSTANCE), live_instance_filter()]
    instances = gatherer.instances_by(Filters=instance_filters)
    cluster = gatherer.cluster(resource_name(lab, learner, NODE_CLUSTER))
    vpcs = _pages(gatherer.ec2, "describe_vpcs", "Vpcs", Filters=ec2_filters(lab, learner, NODE_VPC))
    gatherer.vpc_ids.update(v["VpcId"] for v in vpcs)
    return LabScope(
        lab=lab,
        learner=learner,
        group_nodes=group_nodes,
        instance_ids=tuple(sorted(i.instance_id for i in instances)),
        cluster_id=cluster.identifier if cluster else None,
    )


def gather(
    backend: Backend | None = None,
    config: Any | None = None,
    *,
    group_ids: Iterable[str] = (),
    instance_ids: Iterable[str] = (),
    db_identifiers: Iterable[str] = (),
    lab: bool = True,
) -> Snapshot:
    """Describe the lab (found by the config's tags) plus any explicit groups, instances and databases.

    With `lab=False` only the explicit resources (and the networks they live in) are described.
    """
    config = lab_config(config) if lab else config
    gatherer = _Gatherer(backend_for(config, backend))
    scope = _lab_scope(gatherer, config) if lab else None
    gatherer.groups_by_id(group_ids, required=True)
    if instance_ids:
        _explicit_instances(gatherer, sorted(set(instance_ids)))
    for identifier in db_identifiers:
        if gatherer.cluster(identifier) is None:
            gatherer.db_instances([identifier], None, None)
    return _assemble(gatherer, scope)


def _explicit_instances(gatherer: _Gatherer, instance_ids: list[str]) -> None:
    try:
        gatherer.instances_by(InstanceIds=instance_ids)
    except ClientError as exc:
        raise LabkitError(
            f"instance {', '.join(instance_ids)} was not found ({error_code(exc)})",
            field="instance",
            fix="check the instance id and the region",
        ) from exc


def _assemble(gatherer: _Gatherer, scope: LabScope | None) -> Snapshot:
    holders = [*gatherer.instances.values(), *gatherer.databases.values()]
    gatherer.vpc_ids.update(g["VpcId"] for g in gatherer.raw_groups.values() if g.get("VpcId"))
    gatherer.vpc_ids.update(h.vpc_id for h in holders if h.vpc_id)
    gatherer.groups_by_id({gid for h in [*holders, *gatherer.clusters.values()] for gid in h.group_ids}, required=False)
    if gatherer.vpc_ids:
        gatherer.groups_by_filter([{"Name": "vpc-id", "Values": sorted(gatherer.vpc_ids)}])
    rules = gatherer.rules()
    gatherer.groups_by_id({r.group_ref for r in rules if r.group_ref}, required=False)
    lab_groups = scope.group_nodes if scope else {}
    return Snapshot(
        groups={gid: _group(raw) for gid, raw in sorted(gatherer.raw_groups.items())},
        rules=tuple(rules),
        instances=dict(sorted(gatherer.instances.items())),
        databases=dict(sorted(gatherer.databases.items())),
        clusters=dict(sorted(gatherer.clusters.items())),
        attached_group_ids=gatherer.attached(lab_groups),
        scope=scope,
        **gatherer.network(),
    )
