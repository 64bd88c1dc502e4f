"""Routing hops: same VPC (the local route), the internet (a route to an attached internet gateway and a
public address), and other VPCs (an active peering connection and routes both ways). Pure functions."""

from __future__ import annotations

from labkit.security.fixes import ApiCall, Fix
from labkit.security.model import Route, RouteTable, Snapshot, contains
from labkit.security.paths import Endpoint, Hop


def _table_label(table: RouteTable, subnet_id: str) -> str:
    how = "explicit association" if subnet_id in table.subnet_ids else "main route table"
    return f"{table.route_table_id} ({how}) of {subnet_id}"


def best_route(table: RouteTable, target: Endpoint) -> Route | None:
    """The longest-prefix route whose destination holds every address of `target`."""
    fitting = [r for r in table.routes if all(contains(r.destination, n) for n in target.networks)]
    return max(fitting, key=lambda r: int(r.destination.rsplit("/", 1)[1]), default=None)


def via_nat(snapshot: Snapshot, inside: Endpoint, internet: Endpoint) -> bool:
    """True when the subnet reaches the internet through a NAT gateway (which supplies the public address)."""
    table = snapshot.route_table_for(inside.subnet_id or "")
    route = best_route(table, internet) if table else None
    return bool(route and route.target.startswith("nat-"))


def local_route_hop(snapshot: Snapshot, source: Endpoint, target: Endpoint) -> Hop:
    """Inside one VPC the local route always carries the traffic."""
    table = snapshot.route_table_for(source.subnet_id or "")
    if table is None:
        return Hop("route", source.vpc_id or "?", True, f"same VPC {source.vpc_id}: local routing")
    route = best_route(table, target)
    text = f"{route.destination} -> {route.target}" if route else f"same VPC {source.vpc_id}: local routing"
    return Hop("route", _table_label(table, source.subnet_id or ""), True, text)


def internet_route_hop(snapshot: Snapshot, inside: Endpoint, internet: Endpoint, *, outbound: bool) -> Hop:
    """The subnet needs a route for the internet addresses through an internet gateway attached to its VPC
    (outbound only: a NAT gateway also works)."""
    step = "route to the internet" if outbound else "route back to the internet"
    table = snapshot.route_table_for(inside.subnet_id or "")
    if table is None:
        return Hop(step, inside.subnet_id or "?", False, "no route table found for the subnet")
    resource = _table_label(table, inside.subnet_id or "")
    route = best_route(table, internet)
    if route is None or route.target == "local":
        return Hop(
            step,
            resource,
            False,
            f"no route for {internet.cidr} (only the local route)",
            _route_fix(snapshot, table, internet),
        )
    if route.state != "active":
        return Hop(
            step,
            resource,
            False,
            f"{route.destination} -> {route.target} is {route.state}",
            _route_fix(snapshot, table, internet),
        )
    if route.target.startswith("igw-"):
        if inside.vpc_id not in snapshot.internet_gateways.get(route.target, ()):
            return Hop(
                step,
                resource,
                False,
                f"{route.target} is not attached to {inside.vpc_id}",
                _attach_fix(route.target, inside),
            )
        return Hop(step, resource, True, f"{route.destination} -> {route.target}")
    if route.target.startswith("nat-"):
        if outbound:
            return Hop(step, resource, True, f"{route.destination} -> {route.target} (NAT: outbound only)")
        return Hop(
            step,
            resource,
            False,
            f"{route.destination} -> {route.target}: a NAT gateway accepts no inbound connections",
            _route_fix(snapshot, table, internet),
        )
    return Hop(step, resource, True, f"{route.destination} -> {route.target} (not evaluated beyond this target)")


def _route_fix(snapshot: Snapshot, table: RouteTable, internet: Endpoint) -> Fix:
    gateways = snapshot.gateways_of(table.vpc_id)
    if not gateways:
        return Fix(
            f"create an internet gateway, attach it to {table.vpc_id}, then route {internet.cidr} to it in "
            f"{table.route_table_id} (ec2.create_internet_gateway, attach_internet_gateway, create_route)"
        )
    params = {
        "RouteTableId": table.route_table_id,
        "DestinationCidrBlock": internet.cidr,
        "GatewayId": gateways[0],
    }
    return Fix(
        f"route {internet.cidr} to {gateways[0]} in {table.route_table_id}",
        (ApiCall("ec2", "create_route", params),),
    )


def _attach_fix(gateway: str, inside: Endpoint) -> Fix:
    params = {"InternetGatewayId": gateway, "VpcId": inside.vpc_id}
    return Fix(f"attach {gateway} to {inside.vpc_id}", (ApiCall("ec2", "attach_internet_gateway", params),))


def public_address_hop(inside: Endpoint) -> Hop:
    """Internet traffic through an internet gateway needs a public address (or a publicly accessible DB)."""
    if inside.public:
        return Hop("public address", inside.label, True, inside.public_text)
    if inside.kind == "database":
        call = ApiCall(
            "rds",
            "modify_db_instance",
            {
                "DBInstanceIdentifier": inside.resource_id,
                "PubliclyAccessible": True,
                "ApplyImmediately": True,
            },
        )
        caution = "a database should not face the internet: connect through the instance (SSM port forward) instead"
        return Hop(
            "public address",
            inside.label,
            False,
            inside.public_text,
            Fix("make the DB instance publicly accessible", (call,), caution),
        )
    fix = Fix(
        "give the instance a public address: ec2.allocate_address(Domain='vpc'), then "
        f"ec2.associate_address(InstanceId='{inside.resource_id}', AllocationId=...)"
    )
    return Hop("public address", inside.label, False, inside.public_text, fix)


def peering_hops(snapshot: Snapshot, source: Endpoint, target: Endpoint) -> list[Hop]:
    """Different VPCs talk only through an active peering connection with a route each way."""
    a, b = source.vpc_id or "?", target.vpc_id or "?"
    peering = snapshot.peering_between(a, b)
    if peering is None:
        fix = Fix(
            "put both in one VPC, or peer the VPCs: "
            f"ec2.create_vpc_peering_connection(VpcId='{a}', PeerVpcId='{b}'), "
            "accept it, and add a route each way"
        )
        return [
            Hop(
                "VPC peering",
                f"{a} -> {b}",
                False,
                f"{a} and {b} are different VPCs with no active peering",
                fix,
            )
        ]
    hops = [Hop("VPC peering", f"{a} -> {b}", True, f"{peering.peering_id} is active")]
    hops.append(_peering_route_hop(snapshot, source, target, peering.peering_id, "route to the peer VPC"))
    hops.append(_peering_route_hop(snapshot, target, source, peering.peering_id, "route back from the peer VPC"))
    return hops


def _peering_route_hop(snapshot: Snapshot, origin: Endpoint, target: Endpoint, peering_id: str, step: str) -> Hop:
    table = snapshot.route_table_for(origin.subnet_id or "")
    if table is None:
        return Hop(step, origin.subnet_id or "?", False, "no route table found for the subnet")
    resource = _table_label(table, origin.subnet_id or "")
    route = best_route(table, target)
    if route is not None and route.target == peering_id and route.state == "active":
        return Hop(step, resource, True, f"{route.destination} -> {route.target}")
    vpc = snapshot.vpcs.get(target.vpc_id or "")
    destination = vpc.cidrs[0] if vpc and vpc.cidrs else target.cidr
    params = {
        "RouteTableId": table.route_table_id,
        "DestinationCidrBlock": destination,
        "VpcPeeringConnectionId": peering_id,
    }
    fix = Fix(
        f"route {destination} to {peering_id} in {table.route_table_id}",
        (ApiCall("ec2", "create_route", params),),
    )
    return Hop(step, resource, False, f"no route for {target.cidr} through {peering_id}", fix)
