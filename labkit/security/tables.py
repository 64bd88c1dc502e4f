"""Security-group rules as a table people can read: one row per rule, ports and peers in plain words,
and a risk column that the lint shares."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from labkit.aws.backend import Backend
from labkit.security.model import ALL_PORTS, Rule, Snapshot
from labkit.security.snapshot import gather

COLUMNS = ["group", "group_id", "direction", "protocol", "ports", "peer", "description", "risk", "rule_id"]
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
SEVERITY_COLOURS = {"high": "#f8d7da", "medium": "#fff3cd", "low": "#e2e3e5"}
MYSQL_PORT = 3306
SSH_PORT = 22


@dataclass(frozen=True)
class Risk:
    """Why one rule is risky: a severity, a short check name and a sentence."""

    severity: str
    check: str
    text: str
    port: int | None = None  # the well-known port at risk (22 or 3306); None for all ports


def ports_text(rule: Rule) -> str:
    """Ports as people say them: '3306', 'all', '1024-65535' (ICMP: 'all' or 'type 8')."""
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


def _host_prefix(cidr: str) -> int:
    return 128 if ":" in cidr else 32


def rule_risks(rule: Rule) -> list[Risk]:
    """The risks of one rule (inbound only: outbound rules are not scored)."""
    if rule.egress or not rule.cidr:
        return []
    if rule.world_open:
        if rule.all_ports:
            return [Risk("high", "world-open", "all ports open to the internet")]
        return [
            Risk("high", "world-open", f"{name} ({port}) open to the internet", port)
            for port, name in ((SSH_PORT, "SSH"), (MYSQL_PORT, "MySQL"))
            if rule.covers(port)
        ]
    risks = []
    if rule.covers(MYSQL_PORT):
        text = f"MySQL ({MYSQL_PORT}) allowed by CIDR, not by security group"
        risks.append(Risk("medium", "mysql-by-cidr", text, MYSQL_PORT))
    prefix = int(rule.cidr.rsplit("/", 1)[1]) if "/" in rule.cidr else _host_prefix(rule.cidr)
    if rule.covers(SSH_PORT) and prefix < _host_prefix(rule.cidr):
        text = f"SSH ({SSH_PORT}) allowed from {rule.cidr}, more than one address"
        risks.append(Risk("medium", "ssh-wide", text, SSH_PORT))
    return risks


def risk_text(risks: Iterable[Risk]) -> str:
    """'high: SSH (22) open to the internet; ...' or '' for a rule without risk."""
    return "; ".join(f"{r.severity}: {r.text}" for r in risks)


def _sort_key(rule: Rule, snapshot: Snapshot) -> tuple[Any, ...]:
    span = rule.span or (-1, -1)
    return (
        snapshot.group_name(rule.group_id),
        rule.group_id,
        rule.egress,
        rule.protocol,
        span,
        peer_text(rule, snapshot),
    )


def rules_frame(snapshot: Snapshot, group_ids: Iterable[str]) -> pd.DataFrame:
    """One row per rule of the given groups, in a stable order."""
    wanted = set(group_ids)
    rules = sorted((r for r in snapshot.rules if r.group_id in wanted), key=lambda r: _sort_key(r, snapshot))
    rows = [
        {
            "group": snapshot.group_name(rule.group_id),
            "group_id": rule.group_id,
            "direction": rule.direction,
            "protocol": rule.protocol,
            "ports": ports_text(rule),
            "peer": peer_text(rule, snapshot),
            "description": rule.description,
            "risk": risk_text(rule_risks(rule)),
            "rule_id": rule.rule_id,
        }
        for rule in rules
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def lab_group_ids(snapshot: Snapshot) -> list[str]:
    """The lab's own groups, plus any group attached to the lab's instance or databases."""
    found = set(snapshot.scope.group_nodes) if snapshot.scope else set()
    for holder in [*snapshot.instances.values(), *snapshot.databases.values()]:
        found.update(holder.group_ids)
    return sorted(found)


def security_groups(
    config: Any | None = None,
    backend: Backend | None = None,
    group_ids: Iterable[str] | None = None,
    *,
    snapshot: Snapshot | None = None,
) -> pd.DataFrame:
    """The rules of the lab's security groups (or of `group_ids`), one row per rule.

    Columns: group, group_id, direction, protocol, ports, peer (a CIDR or the referenced group's name),
    description, risk ('' or 'severity: why'), rule_id.
    """
    explicit = sorted(set(group_ids)) if group_ids is not None else None
    if snapshot is None:
        snapshot = gather(backend, config, group_ids=explicit or (), lab=explicit is None)
    return rules_frame(snapshot, explicit if explicit is not None else lab_group_ids(snapshot))


def highlight_by_severity(frame: pd.DataFrame, column: str, uuid: str) -> Styler:
    """Rows coloured by the severity `column` starts with ('high', 'medium: ...'). The fixed uuid keeps the
    HTML identical on every run (notebook outputs are compared)."""

    def colour(row: pd.Series) -> list[str]:
        background = SEVERITY_COLOURS.get(str(row[column]).split(":", 1)[0])
        return [f"background-color: {background}" if background else "" for _ in row]

    return Styler(frame, uuid=uuid, cell_ids=False).hide(axis="index").apply(colour, axis=1)


def style_rules(frame: pd.DataFrame, uuid: str = "labkit-rules") -> Styler:
    """A notebook rendering of a rules table, risky rows highlighted."""
    return highlight_by_severity(frame, "risk", uuid)
