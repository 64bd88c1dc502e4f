"""How a rule reads in plain words: its ports and its peer. Shared by the rules table, the lint's findings and
the reachability verdicts, so all three say the same thing; pure, so the engine needs no pandas."""

from __future__ import annotations

from labkit.security.model import ALL_PORTS, Rule, Snapshot


def ports_text(rule: Rule) -> str:
    """Ports as people say them: '443', 'all', '1024-65535' (ICMP: 'all' or 'type 8')."""
    if rule.protocol in ("icmp", "icmpv6"):
        if rule.from_port is None or rule.from_port < 0:
            return "all"
        code = f" code {rule.to_port}" if rule.to_port is not None and rule.to_port >= 0 else ""
        return f"type {rule.from_port}{code}"
    span = rule.span
    if span is None or span == ALL_PORTS:
        return "all"
    return str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"


def peer_text(rule: Rule, snapshot: Snapshot) -> str:
    """A CIDR, the name of the referenced group, or a prefix-list id."""
    if rule.group_ref:
        return snapshot.group_name(rule.group_ref)
    return rule.cidr or rule.prefix_list or "?"
