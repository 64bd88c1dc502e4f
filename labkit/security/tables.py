"""Security-group rules as a table people can read: one row per rule, ports and peers in plain words, and the
risk column the lint shares; styled for a notebook, like the lint's findings table.

The one module of labkit.security that imports pandas as it loads; the engine (snapshot, reach, lint) runs without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from labkit.aws.backend import Backend
from labkit.security.model import Rule, Snapshot, lab_group_ids
from labkit.security.risks import risk_text, rule_risks
from labkit.security.snapshot import gather
from labkit.security.wording import peer_text, ports_text

COLUMNS = ["group", "group_id", "direction", "protocol", "ports", "peer", "description", "risk", "rule_id"]
SEVERITY_COLOURS = {"high": "#f8d7da", "medium": "#fff3cd", "low": "#e2e3e5"}


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


def style_findings(frame: pd.DataFrame, uuid: str = "labkit-lint") -> Styler:
    """A notebook rendering of a findings table, rows coloured by severity."""
    return highlight_by_severity(frame, "severity", uuid)
