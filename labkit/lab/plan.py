"""The lab as a dependency graph, and the plan: per node, what it is, what it needs, and what apply would do.

`plan()` only reads the account. The waves are the earliest moment each node can start: every node in a
wave depends only on nodes of earlier waves, so apply can run a wave's nodes at the same time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from labkit.aws.backend import Backend
from labkit.aws.tags import (
    NODE_CLUSTER,
    NODE_DB_SUBNET_GROUP,
    NODE_DB_SUBNETS,
    NODE_IAM_ROLE,
    NODE_INSTANCE,
    NODE_INSTANCE_PROFILE,
    NODE_INTERNET_GATEWAY,
    NODE_KEY_PAIR,
    NODE_PUBLIC_SUBNET,
    NODE_ROUTE_TABLE,
    NODE_SG_APP,
    NODE_SG_DB,
    NODE_VPC,
    NODE_WRITER,
    reader_node,
)
from labkit.config import LabConfig
from labkit.display import markdown_table
from labkit.errors import ConfigError, LabkitError
from labkit.lab.resources import Found, LabContext, Resource, step_scope
from labkit.lab.resources.compute import Instance, KeyPair
from labkit.lab.resources.database import Cluster, DbInstance, DbSubnetGroup
from labkit.lab.resources.iam import InstanceProfile, Role
from labkit.lab.resources.network import (
    AppSecurityGroup,
    DbSecurityGroup,
    ExistingSubnet,
    ExistingVpc,
    InternetGateway,
    RouteTable,
    Subnet,
    Vpc,
)

CREATE, NOTHING, USE, COMPLETE = "create", "none", "use", "complete"


def network_nodes(config: LabConfig) -> list[Resource]:
    """A new VPC with its gateway, route table and subnets; or an existing VPC's subnets, used as they are."""
    if config.vpc != "create":
        subnets = [NODE_PUBLIC_SUBNET, *NODE_DB_SUBNETS]
        return [ExistingVpc(NODE_VPC), *(ExistingSubnet(node, [NODE_VPC]) for node in subnets)]
    public_cidr, db_a_cidr, db_b_cidr = config.subnet_cidrs()
    return [
        Vpc(NODE_VPC),
        InternetGateway(NODE_INTERNET_GATEWAY, [NODE_VPC]),
        Subnet(NODE_PUBLIC_SUBNET, (NODE_VPC,), cidr=public_cidr, zone_index=0, public=True),
        Subnet(NODE_DB_SUBNETS[0], (NODE_VPC,), cidr=db_a_cidr, zone_index=0, public=False),
        Subnet(NODE_DB_SUBNETS[1], (NODE_VPC,), cidr=db_b_cidr, zone_index=1, public=False),
        RouteTable(NODE_ROUTE_TABLE, [NODE_INTERNET_GATEWAY, NODE_PUBLIC_SUBNET]),
    ]


def lab_graph(config: LabConfig, *, readers: int | None = None, key_pair: bool | None = None) -> dict[str, Resource]:
    """Every node of the lab, keyed by node name, in a valid creation order."""
    readers = config.readers if readers is None else readers
    key_pair = config.key_pair if key_pair is None else key_pair
    nodes = network_nodes(config)
    nodes += [
        AppSecurityGroup(NODE_SG_APP, [NODE_VPC]),
        DbSecurityGroup(NODE_SG_DB, [NODE_VPC, NODE_SG_APP]),
        DbSubnetGroup(NODE_DB_SUBNET_GROUP, NODE_DB_SUBNETS),
        Cluster(NODE_CLUSTER, [NODE_DB_SUBNET_GROUP, NODE_SG_DB]),
        DbInstance(NODE_WRITER, (NODE_CLUSTER,), promotion_tier=0),
        # Readers join after the writer: Aurora makes the first instance to come up the writer.
        *(DbInstance(reader_node(i), (NODE_WRITER,), promotion_tier=1) for i in range(1, readers + 1)),
        Role(NODE_IAM_ROLE),
        InstanceProfile(NODE_INSTANCE_PROFILE, [NODE_IAM_ROLE]),
    ]
    instance_needs = [NODE_PUBLIC_SUBNET, NODE_SG_APP, NODE_INSTANCE_PROFILE]
    if config.vpc == "create":
        instance_needs.insert(1, NODE_ROUTE_TABLE)  # the SSM agent needs its route out when it boots
    if key_pair:
        nodes.append(KeyPair(NODE_KEY_PAIR))
        instance_needs.append(NODE_KEY_PAIR)
    nodes.append(Instance(NODE_INSTANCE, instance_needs))
    return {node.node: node for node in nodes}


# The lab is built in three stages, one notebook each; a stage brings along whatever it depends on.
STAGES = ("network", "database", "compute")


def stage_of(node: str) -> str:
    """Which stage (notebook) creates this node."""
    if node in (NODE_DB_SUBNET_GROUP, NODE_CLUSTER, NODE_WRITER) or node.startswith("db-reader-"):
        return "database"
    if node in (NODE_IAM_ROLE, NODE_INSTANCE_PROFILE, NODE_KEY_PAIR, NODE_INSTANCE):
        return "compute"
    return "network"


def stage_closure(depends_on: Mapping[str, Sequence[str]], stage: str) -> set[str]:
    """The nodes of `stage` and everything they depend on."""
    if stage not in STAGES:
        from labkit.errors import ConfigError

        raise ConfigError(f"unknown stage {stage!r}", field="only", fix=f"use one of {', '.join(STAGES)}")
    keep: set[str] = set()
    stack = [node for node in depends_on if stage_of(node) == stage]
    while stack:
        node = stack.pop()
        if node not in keep:
            keep.add(node)
            stack.extend(p for p in depends_on[node] if p in depends_on)
    return keep


# ----- graph arithmetic -----


def waves(depends_on: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Topological levels: wave k holds the nodes whose longest chain of dependencies has length k."""
    level: dict[str, int] = {}

    def depth(node: str, trail: tuple[str, ...] = ()) -> int:
        if node in trail:
            raise LabkitError(f"dependency cycle: {' -> '.join((*trail, node))}")
        if node not in level:
            parents = [p for p in depends_on[node] if p in depends_on]
            level[node] = 1 + max((depth(p, (*trail, node)) for p in parents), default=-1)
        return level[node]

    for node in depends_on:
        depth(node)
    grouped: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in depends_on:
        grouped[level[node]].append(node)
    return grouped


def critical_path(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """The longest chain of dependencies: the waits that cannot overlap, however many run at once."""
    best: dict[str, list[str]] = {}
    for wave in waves(depends_on):
        for node in wave:
            parents = [best[p] for p in depends_on[node] if p in best]
            best[node] = [*max(parents, key=len, default=[]), node]
    return max(best.values(), key=len, default=[])


def reversed_graph(depends_on: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Dependents instead of dependencies: the order in which things can be deleted."""
    dependents: dict[str, list[str]] = {node: [] for node in depends_on}
    for node, parents in depends_on.items():
        for parent in parents:
            if parent in dependents:
                dependents[parent].append(node)
    return dependents


# ----- the plan -----


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
    """A region that is opt-in and not enabled in this account cannot be used."""
    from botocore.exceptions import ClientError

    try:
        regions = ctx.client("ec2").describe_regions(RegionNames=[ctx.config.region], AllRegions=True)["Regions"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in (
            "OptInRequired",
            "AuthFailure",
            "UnauthorizedOperation",
        ):
            regions = [{"OptInStatus": "not-opted-in"}]
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
    return Plan(ctx.config, steps, banner=ctx.backend.banner(), notes=list(ctx.notes))


def _plan_step(ctx: LabContext, resource: Resource, matches: list[Found], wave: int) -> PlanStep:
    found, detail = (matches[0] if matches else None), ""
    if found is None:
        action = CREATE
    elif resource.adopted:
        action, detail = USE, found.detail
    else:
        ctx.ids[resource.node] = found.resource_id
        fixes = resource.converge(ctx, found.resource_id, dry_run=True)
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
