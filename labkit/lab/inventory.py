"""What a lab holds now: every resource tagged with its lab and learner, type by type (status and verify).

The Resource Groups Tagging API misses DB subnet groups and key pairs, so each registered type is read with
its own describe call: the types destroy deletes, dependents first, then what goes with them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from labkit.aws.backend import Backend
from labkit.config import LabConfig
from labkit.lab.graph import deletion_order
from labkit.lab.plan import check_backend_region
from labkit.lab.resources import Found, LabContext, ResourceType
from labkit.lab.resources.registry import companions_of

INVENTORY_COLUMNS = ["what", "node", "id", "state", "detail"]


def listed_types() -> list[type[ResourceType]]:
    """What status and verify list: every type destroy deletes (dependents first), then their companions."""
    deletable = deletion_order()
    return [*deletable, *companions_of(deletable)]


def inventory(ctx: LabContext, types: Sequence[type[ResourceType]] | None = None) -> list[Found]:
    """Every resource tagged with this lab and learner, read type by type (`types`, or all it lists)."""
    found: list[Found] = []
    for resource_type in listed_types() if types is None else types:
        # Within a type, by node then id: describe calls list in creation order, which concurrency varies.
        found.extend(sorted(resource_type.list_tagged(ctx), key=lambda f: (f.node or "", f.resource_id)))
    return found


def _frame(found: Sequence[Found]) -> pd.DataFrame:
    rows = [{"what": f.kind, "node": f.node, "id": f.resource_id, "state": f.state, "detail": f.detail} for f in found]
    return pd.DataFrame(rows, columns=INVENTORY_COLUMNS)


def status(config: LabConfig, backend: Backend | None = None) -> pd.DataFrame:
    """Every lab resource that exists now (what, node, id, state, detail such as an endpoint)."""
    backend = backend or config.make_backend()
    check_backend_region(config, backend)
    return _frame(inventory(LabContext(config, backend)))


def verify(config: LabConfig, backend: Backend | None = None) -> pd.DataFrame:
    """What remains of the lab: one row per resource of any type labkit creates. Empty means clean."""
    return status(config, backend)
