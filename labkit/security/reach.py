"""Can A reach B on a TCP port? A verdict that lists every hop with the rule that allowed it, or the missing
rule that blocked it, and the exact change that would fix it.

The engine is pure: `Reachability(snapshot).check(...)` reads only the snapshot, so a caller that checks
many connections (the sandbox port-forwarder) describes the account once and checks each connection cheaply.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from labkit.aws.backend import Backend
from labkit.engines import engine_of
from labkit.errors import ConfigError, LabkitError
from labkit.security.fixes import Fix
from labkit.security.model import Database, Instance, Snapshot, network
from labkit.security.paths import EPHEMERAL_PORTS, Endpoint, Hop, acl_hop, security_group_hop
from labkit.security.routes import internet_route_hop, local_route_hop, peering_hops, public_address_hop, via_nat
from labkit.security.snapshot import gather

LAB_ENDPOINTS = ("instance", "writer", "reader", "internet")


@dataclass(frozen=True)
class Verdict:
    """Whether `source` reaches `destination` on tcp `port`, hop by hop."""

    source: str
    destination: str
    port: int
    hops: tuple[Hop, ...]
    path: str = ""

    @property
    def reachable(self) -> bool:
        return all(hop.allowed for hop in self.hops)

    @property
    def blocked_by(self) -> Hop | None:
        """The first hop that blocks the connection (None when reachable)."""
        return next((hop for hop in self.hops if not hop.allowed), None)

    @property
    def fixes(self) -> tuple[Fix, ...]:
        return tuple(hop.fix for hop in self.hops if not hop.allowed and hop.fix)

    @property
    def fix(self) -> str | None:
        """Every change needed, one per blocking hop (None when reachable)."""
        return "\n".join(str(f) for f in self.fixes) or None

    @property
    def headline(self) -> str:
        blocked = self.blocked_by
        state = f"BLOCKED at {blocked.step}" if blocked else "reachable"
        return f"{self.source} -> {self.destination} on tcp {self.port}: {state}"

    def __str__(self) -> str:
        lines = [self.headline]
        if self.path:
            lines.append(f"  path: {self.path}")
        for hop in self.hops:
            mark = "ok     " if hop.allowed else "BLOCKED"
            lines.append(f"  {mark} {hop.step:<28} {hop.resource}\n          {hop.rule}")
        if self.fix:
            lines.append("fix:\n  " + self.fix.replace("\n", "\n  "))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Verdict {self.headline}>"

    def _repr_markdown_(self) -> str:
        blocked = self.blocked_by
        state = f"**blocked** at *{blocked.step}*" if blocked else "**reachable**"
        lines = [f"`{self.source}` → `{self.destination}` on tcp {self.port}: {state}", ""]
        if self.path:
            lines += [f"Path: {_cell(self.path)}", ""]
        lines += ["| | step | resource | rule |", "|---|---|---|---|"]
        for hop in self.hops:
            mark = "allowed" if hop.allowed else "**blocked**"
            lines.append(f"| {mark} | {_cell(hop.step)} | {_cell(hop.resource)} | {_cell(hop.rule)} |")
        for fix in self.fixes:
            lines += ["", "**Fix:** " + fix.markdown()]
        return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --- endpoints -------------------------------------------------------------------------------------------


def _instance_endpoint(instance: Instance) -> Endpoint:
    networks = (network(instance.private_ip),) if instance.private_ip else ()
    public = f"public IP {instance.public_ip}" if instance.public_ip else "the instance has no public IP address"
    return Endpoint(
        "instance",
        instance.label,
        instance.vpc_id,
        instance.subnet_id,
        networks,
        instance.group_ids,
        bool(instance.public_ip),
        public,
        instance.instance_id,
    )


def _database_endpoint(snapshot: Snapshot, db: Database) -> Endpoint:
    subnet = snapshot.subnets.get(db.subnet_id or "")
    networks = (network(subnet.cidr),) if subnet else ()
    where = f" in {subnet.cidr}" if subnet else ""
    public = f"PubliclyAccessible={db.publicly_accessible}"
    return Endpoint(
        "database",
        f"{db.label}{where}",
        db.vpc_id,
        db.subnet_id,
        networks,
        db.group_ids,
        db.publicly_accessible,
        public,
        db.identifier,
    )


def _internet_endpoint(cidr: str = "0.0.0.0/0") -> Endpoint:
    label = "the internet" if cidr == "0.0.0.0/0" else f"{cidr} (internet)"
    return Endpoint("internet", label, networks=(network(cidr),))


def _lab_databases(snapshot: Snapshot, role: str) -> list[Database]:
    cluster = snapshot.clusters.get(snapshot.scope.cluster_id or "") if snapshot.scope else None
    if cluster is None:
        raise LabkitError(
            f"the lab has no Aurora cluster, so there is no {role} to reach",
            field=role,
            fix="create the cluster first (`labkit up`, or labkit.apply() in a notebook), or pass a DB instance identifier",
        )
    names = [cluster.writer] if role == "writer" else list(cluster.readers) or [cluster.writer]
    return [snapshot.databases[n] for n in names if n and n in snapshot.databases]


def _by_address(snapshot: Snapshot, name: str) -> list[Endpoint]:
    for instance in snapshot.instances.values():
        if name in (instance.private_ip, instance.public_ip):
            return [_instance_endpoint(instance)]
    return [_internet_endpoint(str(network(name)))]


def _by_name(snapshot: Snapshot, name: str) -> list[Endpoint]:
    if name in snapshot.instances:
        return [_instance_endpoint(snapshot.instances[name])]
    if name in snapshot.databases:
        return [_database_endpoint(snapshot, snapshot.databases[name])]
    for db in snapshot.databases.values():
        if name == db.address:
            return [_database_endpoint(snapshot, db)]
    for cluster in snapshot.clusters.values():
        members = []
        if name in (cluster.endpoint, cluster.identifier):
            members = [cluster.writer]
        elif name == cluster.reader_endpoint:
            members = list(cluster.readers) or [cluster.writer]
        found = [_database_endpoint(snapshot, snapshot.databases[m]) for m in members if m in snapshot.databases]
        if found:
            return found
    raise LabkitError(
        f"unknown endpoint {name!r}",
        field="source/destination",
        fix=f"use one of {', '.join(LAB_ENDPOINTS)}, an instance id, a DB identifier, an endpoint or an IP",
    )


def resolve(snapshot: Snapshot, name: str) -> list[Endpoint]:
    """The endpoint(s) a name stands for; the reader endpoint stands for every reader."""
    if name == "internet":
        return [_internet_endpoint()]
    if name == "instance":
        instances = [snapshot.instances[i] for i in (snapshot.scope.instance_ids if snapshot.scope else ())]
        if not instances:
            raise LabkitError(
                "the lab has no EC2 instance yet",
                field="instance",
                fix="create it first (`labkit up`, or labkit.apply() in a notebook)",
            )
        return [_instance_endpoint(instances[0])]
    if name in ("writer", "reader"):
        return [_database_endpoint(snapshot, db) for db in _lab_databases(snapshot, name)]
    if _is_address(name):
        return _by_address(snapshot, name)
    return _by_name(snapshot, name)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_network(name, strict=False)
    except ValueError:
        return False
    return True


# --- the path -----------------------------------------------------------------------------------------------


def _inside_hops(snapshot: Snapshot, source: Endpoint, target: Endpoint, port: int) -> list[Hop]:
    same_vpc = source.vpc_id == target.vpc_id
    crosses_subnets = source.subnet_id != target.subnet_id
    hops = [security_group_hop(snapshot, source, target, port, egress=True)]
    if crosses_subnets:
        hops.append(acl_hop(snapshot, source.subnet_id, target, (port, port), egress=True))
    hops += [local_route_hop(snapshot, source, target)] if same_vpc else peering_hops(snapshot, source, target)
    if crosses_subnets:
        hops.append(acl_hop(snapshot, target.subnet_id, source, (port, port), egress=False))
    hops.append(security_group_hop(snapshot, target, source, port, egress=False))
    if crosses_subnets:
        hops.append(acl_hop(snapshot, target.subnet_id, source, EPHEMERAL_PORTS, egress=True, reply=True))
        hops.append(acl_hop(snapshot, source.subnet_id, target, EPHEMERAL_PORTS, egress=False, reply=True))
    return hops


def _to_internet_hops(snapshot: Snapshot, source: Endpoint, internet: Endpoint, port: int) -> list[Hop]:
    hops = [
        security_group_hop(snapshot, source, internet, port, egress=True),
        acl_hop(snapshot, source.subnet_id, internet, (port, port), egress=True),
        internet_route_hop(snapshot, source, internet, outbound=True),
    ]
    if not via_nat(snapshot, source, internet):
        hops.append(public_address_hop(source))
    hops.append(acl_hop(snapshot, source.subnet_id, internet, EPHEMERAL_PORTS, egress=False, reply=True))
    return hops


def _from_internet_hops(snapshot: Snapshot, internet: Endpoint, target: Endpoint, port: int) -> list[Hop]:
    return [
        public_address_hop(target),
        internet_route_hop(snapshot, target, internet, outbound=False),
        acl_hop(snapshot, target.subnet_id, internet, (port, port), egress=False),
        security_group_hop(snapshot, target, internet, port, egress=False),
        acl_hop(snapshot, target.subnet_id, internet, EPHEMERAL_PORTS, egress=True, reply=True),
    ]


def path_hops(snapshot: Snapshot, source: Endpoint, target: Endpoint, port: int) -> list[Hop]:
    """Every hop of a tcp connection from `source` to `target` on `port`, each with its deciding rule."""
    if source.internet and target.internet:
        raise LabkitError("both ends are on the internet", field="source/destination", fix="name a lab resource")
    if source.internet:
        return _from_internet_hops(snapshot, source, target, port)
    if target.internet:
        return _to_internet_hops(snapshot, source, target, port)
    return _inside_hops(snapshot, source, target, port)


class Reachability:
    """The reachability engine over one snapshot: describe once, check many connections cheaply."""

    def __init__(self, facts: Snapshot) -> None:
        self.facts = facts

    @classmethod
    def snapshot(
        cls,
        backend: Backend | None = None,
        config: Any | None = None,
        *,
        instance_ids: tuple[str, ...] = (),
        db_identifiers: tuple[str, ...] = (),
        lab: bool = True,
    ) -> Reachability:
        """Describe the lab (plus any explicit instances and DB instances) and return an engine over it.

        With `lab=False` only the explicit resources and their networks are described (no config needed).
        """
        return cls(gather(backend, config, instance_ids=instance_ids, db_identifiers=db_identifiers, lab=lab))

    def check(self, source: str, destination: str, port: int | None = None) -> Verdict:
        """The verdict for tcp `port` (the lab engine's when None) from `source` to `destination` (names as in
        `can_reach`)."""
        port = engine_of().port if port is None else port
        sources, targets = resolve(self.facts, source), resolve(self.facts, destination)
        verdicts = [
            Verdict(source, destination, port, tuple(path_hops(self.facts, s, t, port)), f"{s.label} -> {t.label}")
            for s in sources
            for t in targets
        ]
        return next((v for v in verdicts if not v.reachable), verdicts[0])

    def allows(self, source: str, destination: str, port: int | None = None) -> bool:
        return self.check(source, destination, port).reachable


def _explicit_ids(*names: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Instance ids and DB identifiers among the names (keywords, addresses and endpoints excluded)."""
    instances = tuple(n for n in names if n.startswith("i-"))
    databases = tuple(
        n for n in names if n not in LAB_ENDPOINTS and not n.startswith("i-") and "." not in n and not _is_address(n)
    )
    return instances, databases


def can_reach(
    source: str,
    destination: str,
    port: int | None = None,
    config: Any | None = None,
    backend: Backend | None = None,
    *,
    snapshot: Snapshot | None = None,
) -> Verdict:
    """Can `source` open a tcp connection to `destination` on `port` (the lab engine's when None)?

    Names: "instance", "writer", "reader", "internet", an EC2 instance id, a DB instance or cluster
    identifier, a cluster/instance endpoint, or an IP address/CIDR. The reader stands for every reader
    (the reader endpoint may send a connection to any of them): it is reachable only if all are.
    """
    engine = engine_of(config)
    port = engine.port if port is None else port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(
            f"{port!r} is not a TCP port", field="port", fix=f"give a port from 1 to 65535, e.g. {engine.port}"
        )
    if snapshot is None:
        instance_ids, db_identifiers = _explicit_ids(source, destination)
        snapshot = gather(backend, config, instance_ids=instance_ids, db_identifiers=db_identifiers)
    return Reachability(snapshot).check(source, destination, port)
