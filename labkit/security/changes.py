"""Deliberate rule changes for the break-and-fix exercise: remove the rules that open a port on a lab group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.aws.backend import Backend
from labkit.aws.tags import resource_name
from labkit.errors import ConfigError
from labkit.security.fixes import revoke

if TYPE_CHECKING:
    import pandas as pd

DIRECTIONS = ("ingress", "egress")  # as the rules table writes them


def revoke_rules(
    config: Any, group: str, port: int, direction: str = "ingress", backend: Backend | None = None
) -> pd.DataFrame:
    """Revoke every `direction` rule of the lab group `group` (e.g. "sg-db") that opens `port`.

    Returns the rules removed (the rules-table rows). Nothing matching is an error that says what exists.
    """
    if direction not in DIRECTIONS:
        raise ConfigError(
            f"unknown direction {direction!r}", field="direction", fix="use 'ingress' (inbound) or 'egress' (outbound)"
        )
    from labkit.security.tables import security_groups  # heavy dependency (pandas): the result is a rules table

    backend = backend or config.make_backend()
    rules = security_groups(config, backend)
    name = resource_name(config.lab, config.learner, group)
    chosen = rules[(rules["group"] == name) & (rules["direction"] == direction) & (rules["ports"] == str(port))]
    if chosen.empty:
        raise ConfigError(
            f"{name} has no {direction} rule for port {port}",
            field="group",
            fix="look at `labkit.security_groups(config)` for the rules that exist",
        )
    for row in chosen.itertuples():
        revoke(row.group_id, row.rule_id, egress=direction == "egress").run(backend)
    return chosen.drop(columns=["group_id", "rule_id"]).reset_index(drop=True)
