"""The plan: per node of the lab graph, what it is, what it needs, whether it exists, and what apply would do.

`plan()` only reads the account (pyinfra's facts before operations): apply carries out exactly what it says.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from labkit.aws.backend import Backend
from labkit.aws.errors import error_code, error_message
from labkit.config import LabConfig
from labkit.display import markdown_table
from labkit.errors import ConfigError, LabkitError
from labkit.lab.graph import critical_path, lab_graph, waves
from labkit.lab.resources import Found, LabContext, Resource, step_scope
from labkit.lab.resources.database import Cluster, DbInstance, engine_choice

CREATE, NOTHING, USE, COMPLETE = "create", "none", "use", "complete"
DATABASE_KINDS = (Cluster.kind, DbInstance.kind)  # creating one needs the engine version and an orderable class


@dataclass(frozen=True)
class PlanStep:
    node: str
    kind: str
    name: str
    depends_on: tuple[str, ...]
    wave: int
    resource_id: str | None
    action: str  # create | none | use | complete
    detail: str = ""
    duplicates: tuple[str, ...] = ()  # more resources tagged as this node (destroy removes them all)


@dataclass
class Plan:
    """What the account holds for this lab, and what apply would do about it."""

    config: LabConfig
    steps: list[PlanStep]
    banner: str = ""
    notes: list[str] = field(default_factory=list)

    def step(self, node: str) -> PlanStep:
        return next(s for s in self.steps if s.node == node)

    @property
    def changes(self) -> list[PlanStep]:
        return [s for s in self.steps if s.action in (CREATE, COMPLETE)]

    @property
    def nothing_to_do(self) -> bool:
        return not self.changes

    @property
    def duplicates(self) -> dict[str, tuple[str, ...]]:
        """Nodes with more than one resource, e.g. after a create whose reply was lost and was retried."""
        return {s.node: (s.resource_id or "", *s.duplicates) for s in self.steps if s.duplicates}

    def depends_on(self) -> dict[str, tuple[str, ...]]:
        return {s.node: s.depends_on for s in self.steps}

    def waves(self) -> list[list[str]]:
        return waves(self.depends_on())

    def schedule(self) -> dict[str, Any]:
        """Sequential waits apply needs for what it creates: one after another, and on the critical path."""
        work = {s.node: tuple(d for d in s.depends_on if self.step(d).action == CREATE) for s in self.steps}
        work = {node: deps for node, deps in work.items() if self.step(node).action == CREATE}
        path = critical_path(work)
        return {"sequential": len(work), "critical_path": len(path), "path": path, "waves": len(waves(work))}

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "wave": s.wave,
                "node": s.node,
                "what": s.kind,
                "name": s.name,
                "depends on": ", ".join(s.depends_on),
                "exists": s.resource_id or "",
                "action": s.action,
                "detail": s.detail,
            }
            for s in self.steps
        ]
        return pd.DataFrame(rows, columns=["wave", "node", "what", "name", "depends on", "exists", "action", "detail"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "banner": self.banner,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "waves": self.waves(),
            "schedule": self.schedule(),
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def mermaid(self) -> str:
        """The graph as a Mermaid flowchart (JupyterLab renders ```mermaid blocks in markdown)."""
        lines = ["flowchart LR"]
        for s in self.steps:
            label = f"{s.node}<br/>{s.kind}<br/>{s.resource_id or 'to ' + s.action}"
            lines.append(f'    {_mermaid_id(s.node)}["{label}"]:::{s.action}Node')
        for s in self.steps:
            for parent in s.depends_on:
                lines.append(f"    {_mermaid_id(parent)} --> {_mermaid_id(s.node)}")
        lines += [
            "    classDef createNode fill:#fff3cd,stroke:#b58105,stroke-dasharray: 4 3",
            "    classDef completeNode fill:#fff3cd,stroke:#b58105",
            "    classDef noneNode fill:#d4edda,stroke:#2e7d32",
            "    classDef useNode fill:#e2e3e5,stroke:#6c757d",
        ]
        return "\n".join(lines)

    def summary(self) -> str:
        counts = {a: sum(1 for s in self.steps if s.action == a) for a in (CREATE, COMPLETE, NOTHING, USE)}
        if self.nothing_to_do:
            text = f"nothing to do: all {len(self.steps)} nodes exist"
        else:
            text = f"{counts[CREATE]} to create, {counts[COMPLETE]} to complete, {counts[NOTHING]} already there"
        if counts[USE]:
            text += f", {counts[USE]} existing network resources used as they are"
        if self.duplicates:
            text += f"; duplicates of {', '.join(self.duplicates)} (destroy removes them all)"
        return text

    def __str__(self) -> str:
        return f"{self.summary()}\n{self.to_frame().to_string(index=False)}"

    def _repr_markdown_(self) -> str:
        """Table and diagram in one markdown output (no HTML repr, so JupyterLab renders the Mermaid block)."""
        table = markdown_table(self.to_frame())
        return f"**Plan:** {self.summary()}\n\n{table}\n\n```mermaid\n{self.mermaid()}\n```\n"


def _mermaid_id(node: str) -> str:
    return node.replace("-", "_")


def check_backend_region(config: LabConfig, backend: Backend) -> None:
    if backend.region != config.region:
        raise ConfigError(
            f"the backend is in {backend.region} but the config says {config.region}",
            field="region",
            fix="pass no backend (labkit makes one for the config's region), or make one with the same region",
        )


def check_region_enabled(ctx: LabContext) -> None:
    """A region that is opt-in and not enabled in this account cannot be used.

    Only OptInRequired means that (EC2 API reference, "Error codes"); AuthFailure is bad credentials and
    UnauthorizedOperation a missing ec2:DescribeRegions, each said as what it is.
    """
    try:
        regions = ctx.client("ec2").describe_regions(RegionNames=[ctx.config.region], AllRegions=True)["Regions"]
    except ClientError as exc:
        code = error_code(exc)
        if code == "OptInRequired":
            regions = [{"OptInStatus": "not-opted-in"}]
        elif code == "AuthFailure":
            raise LabkitError(
                f"AWS did not accept your credentials in {ctx.config.region} ({error_message(exc)})",
                field="credentials",
                fix="refresh them (`aws sso login`, or new access keys) and check the clock of this machine",
            ) from None
        elif code == "UnauthorizedOperation":
            raise LabkitError(
                "your identity may not call ec2:DescribeRegions",
                field="permissions",
                fix="attach the labkit learner policies (labkit-learner-*); `labkit preflight` lists what is missing",
            ) from None
        else:
            raise
    if regions and regions[0].get("OptInStatus") == "not-opted-in":
        raise ConfigError(
            f"{ctx.config.region} is not enabled in this account",
            field="region",
            fix="enable it under Account > AWS Regions in the console, or choose another region",
        )


def read_plan(ctx: LabContext, graph: Mapping[str, Resource]) -> Plan:
    """Find every node of `graph` in the account and decide what apply would do (fills ctx.ids)."""
    check_region_enabled(ctx)
    depends_on = {name: node.depends_on for name, node in graph.items()}
    wave_of = {node: index for index, wave in enumerate(waves(depends_on)) for node in wave}
    steps = []
    with ctx.snapshot():
        for name, resource in graph.items():
            with step_scope(name):
                steps.append(_plan_step(ctx, resource, resource.find_all(ctx), wave_of[name]))
    if any(step.action == CREATE and step.kind in DATABASE_KINDS for step in steps):
        ctx.notes.append(engine_choice(ctx).describe())  # a retired version or unorderable class fails here
    return Plan(ctx.config, steps, banner=ctx.backend.banner(), notes=list(ctx.notes))


def _plan_step(ctx: LabContext, resource: Resource, matches: list[Found], wave: int) -> PlanStep:
    found, detail = (matches[0] if matches else None), ""
    if found is None:
        action = CREATE
    elif resource.adopted:
        action, detail = USE, found.detail
    else:
        ctx.ids[resource.node] = found.resource_id
        fixes = [change.description for change in resource.converge(ctx, found.resource_id)]
        action, detail = (COMPLETE, "; ".join(fixes)) if fixes else (NOTHING, found.state)
    if found is not None:
        ctx.ids[resource.node] = found.resource_id
    name = found.resource_id if resource.adopted and found else ctx.name(resource.node)
    return PlanStep(
        node=resource.node,
        kind=resource.kind,
        name=name,
        depends_on=resource.depends_on,
        wave=wave,
        resource_id=found.resource_id if found else None,
        action=action,
        detail=detail,
        duplicates=tuple(m.resource_id for m in matches[1:]),
    )


def plan(config: LabConfig, backend: Backend | None = None) -> Plan:
    """Read the account and say, per node, whether it exists and what apply would do. Changes nothing."""
    backend = backend or config.make_backend()
    check_backend_region(config, backend)
    return read_plan(LabContext(config, backend), lab_graph(config))
