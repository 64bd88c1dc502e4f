"""The hops of a TCP connection and the rule that decides each one. Pure functions over a Snapshot.

A connection from A to B passes: A's security-group egress, A's subnet network ACL (out), a route, B's
subnet network ACL (in), B's security-group ingress, and the return traffic through both network ACLs
(ACLs are stateless; security groups are stateful, so replies pass them on their own).
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.security.fixes import ApiCall, Fix, authorize
from labkit.security.model import AclEntry, Network, NetworkAcl, Rule, Snapshot, contains, network
from labkit.security.wording import peer_text, ports_text

EPHEMERAL_PORTS = (1024, 65535)
IMPLICIT_DENY = 32767
INTERNET_NETWORK = network("0.0.0.0/0")


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: where it sits (VPC, subnet), its addresses as rules see them, its groups."""

    kind: str  # "instance", "database" or "internet"
    label: str
    vpc_id: str | None = None
    subnet_id: str | None = None
    networks: tuple[Network, ...] = (INTERNET_NETWORK,)
    group_ids: tuple[str, ...] = ()
    public: bool = False
    public_text: str = ""
    resource_id: str | None = None

    @property
    def internet(self) -> bool:
        return self.kind == "internet"

    @property
    def cidr(self) -> str:
        """One CIDR covering the endpoint's addresses (for a fix that must name a CIDR)."""
        return str(_covering(self.networks)) if self.networks else "unknown"


@dataclass(frozen=True)
class Hop:
    """One step of the path: allowed (by `rule`) or blocked (`rule` says what is missing or what denies)."""

    step: str
    resource: str
    allowed: bool
    rule: str
    fix: Fix | None = None


def _covering(networks: tuple[Network, ...]) -> Network:
    first = networks[0]
    candidate = first
    while not all(contains(candidate, n) for n in networks):
        candidate = candidate.supernet()
    return candidate


# --- security groups ------------------------------------------------------------------------------------


def rule_text(rule: Rule, snapshot: Snapshot) -> str:
    """'sg-app ingress tcp 22 from 203.0.113.7/32 (sgr-1, "SSH")' style sentence for one rule."""
    towards = "to" if rule.egress else "from"
    text = (
        f"{snapshot.group_name(rule.group_id)} {rule.direction} {rule.protocol} {ports_text(rule)} "
        f"{towards} {peer_text(rule, snapshot)} ({rule.rule_id}"
    )
    return text + (f', "{rule.description}")' if rule.description else ")")


def matches_peer(rule: Rule, peer: Endpoint) -> bool:
    """True when the rule's peer (a group reference or a CIDR) includes every address of `peer`."""
    if rule.group_ref:
        return rule.group_ref in peer.group_ids
    if rule.cidr:
        return bool(peer.networks) and all(contains(rule.cidr, n) for n in peer.networks)
    return False  # prefix lists are not evaluated


def _preference(rule: Rule) -> tuple[int, int]:
    """Group references first, then the narrowest CIDR: the rule that explains the path best."""
    if rule.group_ref:
        return (0, 0)
    return (1, -network(rule.cidr or "0.0.0.0/0").prefixlen)


def primary_group(snapshot: Snapshot, group_ids: tuple[str, ...]) -> str:
    """The group a fix should change: a lab group when there is one, else the first."""
    lab = snapshot.scope.group_nodes if snapshot.scope else {}
    return next((g for g in group_ids if g in lab), group_ids[0])


def security_group_hop(snapshot: Snapshot, side: Endpoint, peer: Endpoint, port: int, *, egress: bool) -> Hop:
    """Does any of `side`'s groups allow tcp `port` out to (egress) or in from (ingress) `peer`?"""
    step = "security group egress" if egress else "security group ingress"
    names = ", ".join(snapshot.group_label(g) for g in side.group_ids) or "(no security group)"
    rules = [r for g in side.group_ids for r in snapshot.rules_of(g, egress=egress)]
    matches = sorted((r for r in rules if r.covers(port) and matches_peer(r, peer)), key=_preference)
    if matches:
        return Hop(step, names, True, rule_text(matches[0], snapshot))
    towards = "to" if egress else "from"
    missing = f"no {step.split()[-1]} rule allows tcp {port} {towards} {peer.label}"
    near = [r for r in rules if matches_peer(r, peer)]
    if near:
        missing += "; closest: " + "; ".join(rule_text(r, snapshot) for r in near[:2])
    fix = _group_fix(snapshot, side, peer, port, egress=egress) if side.group_ids else None
    return Hop(step, names, False, missing, fix)


def _group_fix(snapshot: Snapshot, side: Endpoint, peer: Endpoint, port: int, *, egress: bool) -> Fix:
    group = primary_group(snapshot, side.group_ids)
    towards = "to" if egress else "from"
    if peer.group_ids and not peer.internet:
        peer_group = primary_group(snapshot, peer.group_ids)
        description = f"tcp {port} {towards} {snapshot.group_name(peer_group)}"
        call = authorize(group, port, egress=egress, group=peer_group, cidr=None, description=description)
        return Fix(
            f"allow tcp {port} {towards} {snapshot.group_name(peer_group)} in {snapshot.group_name(group)}",
            (call,),
        )
    caution = None
    if peer.internet and not egress:
        caution = "this opens the port to every address on the internet; prefer your own address (/32)"
    call = authorize(
        group,
        port,
        egress=egress,
        group=None,
        cidr=peer.cidr,
        description=f"tcp {port} {towards} {peer.cidr}",
    )
    return Fix(f"allow tcp {port} {towards} {peer.cidr} in {snapshot.group_name(group)}", (call,), caution)


# --- network ACLs ---------------------------------------------------------------------------------------

Span = tuple[int, int]


def _subtract(remaining: list[Span], span: Span) -> list[Span]:
    out: list[Span] = []
    for low, high in remaining:
        if span[1] < low or span[0] > high:
            out.append((low, high))
            continue
        if low < span[0]:
            out.append((low, span[0] - 1))
        if high > span[1]:
            out.append((span[1] + 1, high))
    return out


def _overlaps(remaining: list[Span], span: Span) -> bool:
    return any(not (span[1] < low or span[0] > high) for low, high in remaining)


def acl_decision(
    acl: NetworkAcl, *, egress: bool, peers: tuple[Network, ...], ports: Span
) -> tuple[bool, list[AclEntry]]:
    """Walk the entries lowest number first; the first entry matching each port decides it.

    Returns (allowed, deciding entries): the allow entries that covered every port, or the one entry that
    denied (the implicit `*` deny when nothing matched). An entry applies only when its CIDR holds every peer
    address; an entry that covers part of the range is skipped.
    """
    remaining = [ports]
    allowing: list[AclEntry] = []
    for entry in acl.entries:
        span = entry.span
        if entry.egress != egress or entry.protocol not in ("all", "tcp") or span is None:
            continue
        if not all(contains(entry.cidr, n) for n in peers) or not _overlaps(remaining, span):
            continue
        if not entry.allow:
            return False, [entry]
        allowing.append(entry)
        remaining = _subtract(remaining, span)
        if not remaining:
            return True, allowing
    return False, []


def _free_rule_number(acl: NetworkAcl, egress: bool, below: int) -> int | None:
    """A free rule number lower than `below` (closest first), or None."""
    used = {e.rule_number for e in acl.entries if e.egress == egress}
    if below >= IMPLICIT_DENY:
        candidates = [*range(100, IMPLICIT_DENY, 10), *range(1, IMPLICIT_DENY)]
    else:
        candidates = list(range(below - 1, 0, -1))
    return next((n for n in candidates if n not in used), None)


def _acl_fix(acl: NetworkAcl, egress: bool, peer: Endpoint, ports: Span, deny: AclEntry | None) -> Fix:
    below = deny.rule_number if deny else IMPLICIT_DENY
    number = _free_rule_number(acl, egress, below)
    params = {
        "NetworkAclId": acl.acl_id,
        "RuleNumber": number if number is not None else below,
        "Protocol": "6",
        "RuleAction": "allow",
        "Egress": egress,
        "CidrBlock": peer.cidr,
        "PortRange": {"From": ports[0], "To": ports[1]},
    }
    span = str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"
    where = f"before deny #{deny.number_text}" if deny else "(nothing allows it yet)"
    if number is None:
        return Fix(f"replace entry #{below} with an allow", (ApiCall("ec2", "replace_network_acl_entry", params),))
    summary = f"add an allow entry #{number} for tcp {span} {'to' if egress else 'from'} {peer.cidr} {where}"
    return Fix(summary, (ApiCall("ec2", "create_network_acl_entry", params),))


def acl_hop(
    snapshot: Snapshot,
    subnet_id: str | None,
    peer: Endpoint,
    ports: Span,
    *,
    egress: bool,
    reply: bool = False,
) -> Hop:
    """Does the subnet's network ACL let tcp `ports` out to (egress) or in from `peer`?"""
    subnet = snapshot.subnets.get(subnet_id or "")
    where = subnet.label if subnet else (subnet_id or "unknown subnet")
    step = f"network ACL {'outbound' if egress else 'inbound'}" + (" (reply)" if reply else "")
    acl = snapshot.acl_for(subnet_id) if subnet_id else None
    if acl is None:
        return Hop(step, where, True, "no network ACL found for the subnet: nothing to evaluate")
    allowed, entries = acl_decision(acl, egress=egress, peers=peer.networks, ports=ports)
    resource = f"{acl.acl_id} on {where}"
    if allowed:
        return Hop(step, resource, True, ", ".join(e.text() for e in entries))
    deny = entries[0] if entries else None
    text = deny.text() if deny else "no entry allows it: the implicit deny (*) applies"
    return Hop(step, resource, False, text, _acl_fix(acl, egress, peer, ports, deny))
