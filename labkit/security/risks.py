"""Which inbound rules are risky, and how badly: scored once here for the rules table's risk column and the
lint's findings alike (pure: no pandas, no AWS calls)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from labkit.engines import ENGINES
from labkit.security.model import Rule

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
SSH_PORT = 22
# Each Aurora engine's port, as people name what listens there: a CIDR rule should never open these.
DATABASE_PORTS = {engine.port: engine.family for engine in ENGINES.values()}


@dataclass(frozen=True)
class Risk:
    """Why one rule is risky: a severity, a short check name and a sentence."""

    severity: str
    check: str
    text: str
    port: int | None = None  # the well-known port at risk (SSH's or a database's); None for all ports


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
            for port, name in ((SSH_PORT, "SSH"), *DATABASE_PORTS.items())
            if rule.covers(port)
        ]
    risks = []
    for port, name in DATABASE_PORTS.items():
        if rule.covers(port):
            text = f"{name} ({port}) allowed by CIDR, not by security group"
            risks.append(Risk("medium", f"{name.lower()}-by-cidr", text, port))
    prefix = int(rule.cidr.rsplit("/", 1)[1]) if "/" in rule.cidr else _host_prefix(rule.cidr)
    if rule.covers(SSH_PORT) and prefix < _host_prefix(rule.cidr):
        text = f"SSH ({SSH_PORT}) allowed from {rule.cidr}, more than one address"
        risks.append(Risk("medium", "ssh-wide", text, SSH_PORT))
    return risks


def risk_text(risks: Iterable[Risk]) -> str:
    """'high: SSH (22) open to the internet; ...' or '' for a rule without risk."""
    return "; ".join(f"{r.severity}: {r.text}" for r in risks)
