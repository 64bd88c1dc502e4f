"""The instructor's view: every learner's lab resources across regions, with state, age and cost per hour.

Learners are found by their tags (see scan.py); each learner's rows come from the same inventory that
`labkit status` and destroy use, so the class view and a reset always agree on what a lab holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from labkit.aws.backend import Backend
from labkit.classroom.scan import RegionScan, Seen, check_names, class_backends, format_age, now, scan
from labkit.config import LabConfig
from labkit.display import literal_html
from labkit.engines import described, engine_of
from labkit.errors import ConfigError
from labkit.lab.cost import hourly
from labkit.lab.inventory import inventory
from labkit.lab.resources import LabContext

RESOURCE_COLUMNS = ["region", "lab", "learner", "what", "node", "id", "state", "age", "cost_per_hour"]
LEARNER_COLUMNS = ["region", "lab", "learner", "resources", "age", "cost_per_hour"]
RUNNING_DB_STATES = ("available", "backing-up", "modifying", "configuring-enhanced-monitoring", "upgrading")
COST_NOTE = "cost per hour counts EC2 instances, Aurora instances and public IPv4 addresses; not storage or I/O"


def hourly_cost(seen: Seen | None, region: str) -> float | None:
    """What one resource costs per hour now (0.0 for what is free or stopped; None when no price is known)."""
    if seen is None:
        return 0.0
    total: float | None = 0.0
    parts: list[tuple[str, str]] = []
    if seen.kind == "EC2 instance" and seen.state in ("pending", "running"):
        parts.append(("ec2", seen.size))
        if seen.public_ip:
            parts.append(("public-ipv4", ""))
    elif seen.kind == "Aurora instance" and seen.state in RUNNING_DB_STATES:
        parts.append(((described(seen.engine) or engine_of()).price_key, seen.size))
    elif seen.kind == "Elastic IP":
        parts.append(("public-ipv4", ""))
    for service, size in parts:
        price = hourly(service, size, region)
        total = None if price is None or total is None else total + price
    return total


@dataclass
class LearnerLab:
    """One learner's lab in one region: its resources (inventory rows joined with what the scan saw)."""

    region: str
    lab: str
    learner: str
    created: datetime | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cost_per_hour(self) -> float | None:
        costs = [row["cost_per_hour"] for row in self.rows]
        return None if any(c is None for c in costs) else round(sum(costs), 4)


@dataclass
class ClassStatus:
    """Every learner's lab: `resources` (one row each), `learners` (one row per lab), and totals."""

    labs: list[LearnerLab]
    regions: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def resources(self) -> pd.DataFrame:
        return pd.DataFrame([row for lab in self.labs for row in lab.rows], columns=RESOURCE_COLUMNS)

    @property
    def learners(self) -> pd.DataFrame:
        taken = now()
        rows = [
            {
                "region": lab.region,
                "lab": lab.lab,
                "learner": lab.learner,
                "resources": len(lab.rows),
                "age": format_age(taken - lab.created) if lab.created else "",
                "cost_per_hour": lab.cost_per_hour,
            }
            for lab in self.labs
        ]
        return pd.DataFrame(rows, columns=LEARNER_COLUMNS)

    @property
    def totals(self) -> dict[str, Any]:
        costs = [lab.cost_per_hour for lab in self.labs]
        return {
            "learners": len({(lab.lab, lab.learner) for lab in self.labs}),
            "labs": len(self.labs),
            "resources": sum(len(lab.rows) for lab in self.labs),
            "cost_per_hour": None if any(c is None for c in costs) else round(sum(c or 0.0 for c in costs), 4),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "regions": self.regions,
            "totals": self.totals,
            "learners": self.learners.to_dict(orient="records"),
            "resources": self.resources.to_dict(orient="records"),
            "notes": self.notes,
        }

    def __str__(self) -> str:
        lines = []
        for lab in self.labs:
            cost = "?" if lab.cost_per_hour is None else f"${lab.cost_per_hour:.4f}/h"
            lines.append(f"== {lab.region}  lab {lab.lab}  learner {lab.learner}  ({len(lab.rows)} resources, {cost})")
            frame = pd.DataFrame(lab.rows, columns=RESOURCE_COLUMNS).drop(columns=["region", "lab", "learner"])
            lines.append(frame.to_string(index=False))
        totals = self.totals
        cost = "unknown" if totals["cost_per_hour"] is None else f"${totals['cost_per_hour']:.4f} per hour"
        lines.append(
            f"total: {totals['learners']} learners, {totals['labs']} labs, {totals['resources']} resources, {cost}"
        )
        return "\n".join([*lines, *(f"note: {note}" for note in self.notes)])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        totals = self.totals
        head = f"<p>{totals['learners']} learners, {totals['resources']} resources, cost per hour {totals['cost_per_hour']}</p>"
        return literal_html(head + self.learners.to_html(index=False) + self.resources.to_html(index=False))


def learner_lab(region_scan: RegionScan, lab: str, learner: str) -> LearnerLab:
    """Inventory one learner's lab in one region and join the scan's state, age and size to each row."""
    backend = region_scan.backend
    config = LabConfig(lab=lab, learner=learner, region=backend.region, backend=backend.name)
    seen = {s.resource_id: s for s in region_scan.of(lab, learner)}
    taken = now()
    result = LearnerLab(backend.region, lab, learner, region_scan.created(lab, learner))
    for found in inventory(LabContext(config, backend)):
        item = seen.get(found.resource_id)
        created = item.created if item else None
        row = {
            "region": backend.region,
            "lab": lab,
            "learner": learner,
            "what": found.kind,
            "node": found.node,
            "id": found.resource_id,
            "state": found.state,
            "age": format_age(taken - created) if created else "",
            "cost_per_hour": hourly_cost(item, backend.region),
        }
        result.rows.append(row)
    return result


def valid_pair(lab: str, learner: str) -> bool:
    """True when the tags name a lab labkit could have made (anything else is never touched)."""
    try:
        LabConfig(lab=lab, learner=learner)
    except ConfigError:
        return False
    return True


def select(scans: Sequence[RegionScan], lab: str | None, learners: Iterable[str]) -> list[tuple[RegionScan, str, str]]:
    """(region scan, lab, learner) for every lab that matches the filters, sorted."""
    wanted = set(learners)
    chosen = []
    for region_scan in scans:
        for pair_lab, learner in sorted(region_scan.pairs()):
            if (lab is None or pair_lab == lab) and (not wanted or learner in wanted) and valid_pair(pair_lab, learner):
                chosen.append((region_scan, pair_lab, learner))
    return chosen


def class_status(
    *,
    lab: str | None = None,
    learners: Iterable[str] = (),
    regions: Sequence[str] = (),
    backend: str | Backend | None = None,
    backends: Sequence[Backend] = (),
) -> ClassStatus:
    """Every learner's lab resources in the given regions (all labs unless `lab` is given), grouped by learner.

    `backends` (one per region) overrides `regions` and `backend` (sandbox unless 'aws' is named).
    """
    learners = list(learners)
    check_names(lab, learners)
    chosen = class_backends(regions, backend, backends)
    scans = scan(chosen)
    labs = [learner_lab(s, pair_lab, learner) for s, pair_lab, learner in select(scans, lab, learners)]
    return ClassStatus(labs, [b.region for b in chosen], [COST_NOTE])
