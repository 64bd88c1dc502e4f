"""Run the plan: create what is missing, each node as soon as what it needs is usable; destroy in reverse.

Apply reads the account first (so a rerun, or a run after a failure or a kernel restart, creates only
what is missing), prints where changes will land, then works through the graph with a thread pool:
a node starts the moment all its dependencies are usable, so the EC2 and IAM branch never waits for
the cluster. Destroy deletes every resource tagged with this lab and learner, dependents first, then
verifies by listing every resource type labkit creates.
"""

from __future__ import annotations

import dataclasses
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TextIO

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from labkit.aws.backend import Backend
from labkit.aws.errors import error_code
from labkit.aws.patience import Timing
from labkit.aws.tags import NODE_CLUSTER, NODE_DB_SUBNETS, NODE_INSTANCE, NODE_PUBLIC_SUBNET, NODE_SG_APP, NODE_SG_DB
from labkit.config import MAX_READERS, LabConfig
from labkit.display import Progress, progress_for, say
from labkit.errors import LabkitError
from labkit.lab.plan import (
    CREATE,
    USE,
    Plan,
    check_backend_region,
    lab_graph,
    read_plan,
    reversed_graph,
    stage_closure,
    waves,
)
from labkit.lab.resources import Found, LabContext, Resource, step_scope
from labkit.lab.resources.compute import (
    NODE_LEFTOVER_INTERFACES,
    Instance,
    KeyPair,
    LeftoverInterfaces,
    NetworkInterface,
    Volume,
)
from labkit.lab.resources.database import (
    NODE_CLUSTER_SNAPSHOTS,
    Cluster,
    ClusterSecret,
    ClusterSnapshots,
    DbInstance,
    DbSubnetGroup,
)
from labkit.lab.resources.iam import InstanceProfile, Role
from labkit.lab.resources.network import InternetGateway, RouteTable, SecurityGroup, Subnet, Vpc

# Every resource type labkit creates, dependents first; then what goes with them (listed to prove it went).
DELETABLE_TYPES = (
    *(Instance, KeyPair, DbInstance, Cluster, ClusterSnapshots, DbSubnetGroup, InstanceProfile, Role),
    *(LeftoverInterfaces, SecurityGroup, RouteTable, Subnet, InternetGateway, Vpc),
)
COMPANION_TYPES = (Volume, NetworkInterface, ClusterSecret)
INVENTORY_COLUMNS = ["what", "node", "id", "state", "detail"]


class StepsFailed(LabkitError):
    """One or more steps of apply or destroy failed; the others finished or never started."""

    def __init__(self, message: str, *, failures: dict[str, BaseException], field: str | None, fix: str) -> None:
        super().__init__(message, field=field, fix=fix)
        self.failures = failures
        self.remaining: pd.DataFrame | None = None


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, LabkitError):
        return exc.message
    code = error_code(exc)
    if code:
        return f"{code}: {exc.response['Error'].get('Message', '')}"  # type: ignore[attr-defined]
    return f"{type(exc).__name__}: {exc}"


# ----- the scheduler -----


@dataclass
class GraphRun:
    done: dict[str, str] = field(default_factory=dict)  # node -> outcome
    failed: dict[str, BaseException] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)


def run_graph(
    depends_on: Mapping[str, Sequence[str]],
    work: Callable[[str], str],
    progress: Progress,
    *,
    action: Callable[[str], str],
    keep_going: bool,
    max_workers: int = 8,
) -> GraphRun:
    """Run `work(node)` for every node once its dependencies are done, many at a time.

    On a failure, no new node starts unless `keep_going` (then only nodes that need the failed one wait).
    """
    _finish_interrupted_runs()
    run = GraphRun()
    pending = {node: [d for d in deps if d in depends_on] for node, deps in depends_on.items()}
    running: dict[Future[str], str] = {}
    pool = _pool(max_workers)
    try:
        while pending or running:
            if keep_going or not run.failed:
                for node in [n for n, deps in pending.items() if all(d in run.done for d in deps)]:
                    del pending[node]
                    progress.started(node, action(node))
                    running[pool.submit(work, node)] = node
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                node = running.pop(future)
                try:
                    run.done[node] = future.result()
                    progress.finished(node, run.done[node])
                except Exception as exc:
                    run.failed[node] = exc
                    progress.failed(node, describe_error(exc))
    except BaseException:
        # Interrupted (e.g. a notebook's stop button): start nothing new and return at once; steps already
        # running finish on their own, and a rerun picks up from whatever they left.
        pool.shutdown(wait=False, cancel_futures=True)
        _interrupted_pools.append(pool)
        raise
    pool.shutdown(wait=True)
    run.not_started = list(pending)
    return run


_interrupted_pools: list[Any] = []


def _finish_interrupted_runs() -> None:
    """Let the steps an interrupted run left going finish first, so a rerun never races them to a create."""
    while _interrupted_pools:
        _interrupted_pools.pop().shutdown(wait=True)


class _InlinePool:
    """A stand-in for the thread pool that runs each task at once, in the calling thread (max_workers=1)."""

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None

    def submit(self, work: Callable[[str], str], node: str) -> Future[str]:
        future: Future[str] = Future()
        try:
            future.set_result(work(node))
        except Exception as exc:
            future.set_exception(exc)
        return future


def _pool(max_workers: int) -> Any:
    if max_workers <= 1:
        return _InlinePool()
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="labkit")


def _first_unexpected(failures: Mapping[str, BaseException]) -> BaseException | None:
    """A failure that is a bug rather than an AWS, network or user problem (it keeps its traceback)."""
    for exc in failures.values():
        if not isinstance(exc, LabkitError | ClientError | BotoCoreError):
            return exc
    return None


# ----- apply -----


@dataclass
class ApplyResult:
    """What apply did: the id of every node, which ones it created or completed, and how long it took."""

    ids: dict[str, str]
    created: list[str]
    completed: list[str]
    seconds: float
    plan: Plan

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for step in self.plan.steps:
            happened = "created" if step.node in self.created else "completed" if step.node in self.completed else ""
            rows.append({"node": step.node, "what": step.kind, "id": self.ids.get(step.node, ""), "apply": happened})
        return pd.DataFrame(rows, columns=["node", "what", "id", "apply"])

    def __repr__(self) -> str:
        return (
            f"<ApplyResult: {len(self.created)} created, {len(self.completed)} completed, "
            f"{len(self.ids)} in the lab>\n{self.to_frame().to_string(index=False)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            "created": self.created,
            "completed": self.completed,
            "seconds": self.seconds,
        }

    def _repr_html_(self) -> str:
        head = f"<p>created {len(self.created)}, completed {len(self.completed)} in {self.seconds:.1f} s</p>"
        return head + self.to_frame().to_html(index=False)


def _apply_step(ctx: LabContext, resource: Resource, plan: Plan, fixed: dict[str, list[str]]) -> str:
    node, step = resource.node, plan.step(resource.node)
    started = time.monotonic()
    with step_scope(node):
        if step.action == USE:
            return f"using {step.resource_id}"
        if step.resource_id is None:
            ctx.ids[node] = resource.create(ctx)
            verb = "created"
        else:
            ctx.ids[node] = step.resource_id
            verb = "exists"
        resource.wait(ctx, ctx.ids[node])
        fixes = fixed[node] = resource.converge(ctx, ctx.ids[node])
    outcome = f"{verb} {ctx.ids[node]}" + (f"; {'; '.join(fixes)}" if fixes else "")
    return f"{outcome} ({time.monotonic() - started:.1f} s)"


def apply(
    config: LabConfig,
    backend: Backend | None = None,
    *,
    progress: Progress | None = None,
    stream: TextIO | None = None,
    timing: Timing | None = None,
    max_workers: int = 8,
    only: str | None = None,
    quiet: bool = False,
) -> ApplyResult:
    """Create whatever the lab is missing, in dependency order, independent nodes at the same time.

    `only="network" | "database" | "compute"` builds one stage and what it depends on (one per notebook).
    `quiet=True` shows no progress (the result says what happened).
    """
    started = time.monotonic()
    stream = io.StringIO() if quiet else stream
    _finish_interrupted_runs()  # before reading the account: a step left running may still create
    backend = backend or config.make_backend()
    check_backend_region(config, backend)
    ctx = LabContext(config, backend, timing)
    graph = lab_graph(config)
    if only is not None:
        keep = stage_closure({n: list(r.depends_on) for n, r in graph.items()}, only)
        graph = {node: resource for node, resource in graph.items() if node in keep}
    before = read_plan(ctx, graph)
    say(f"changes go to: {before.banner}", stream)
    say(f"plan: {before.summary()}", stream)
    for note in before.notes:
        say(f"note: {note}", stream)
    progress = progress or progress_for("apply", len(graph), stream)
    fixed: dict[str, list[str]] = {}
    run = run_graph(
        before.depends_on(),
        lambda node: _apply_step(ctx, graph[node], before, fixed),
        progress,
        action=lambda node: before.step(node).action,
        keep_going=False,
        max_workers=max_workers,
    )
    created = [s.node for s in before.steps if s.action == CREATE and s.node in run.done]
    completed = [s.node for s in before.steps if s.action != CREATE and fixed.get(s.node)]
    if run.failed:
        progress.close(f"stopped: {len(run.failed)} failed, {len(run.done)} done, {len(run.not_started)} not started")
        _raise_apply_failure(run)
    progress.close(f"done: {len(created)} created, {len(completed)} completed, {len(graph)} in the lab")
    return ApplyResult(dict(ctx.ids), created, completed, time.monotonic() - started, before)


def _raise_apply_failure(run: GraphRun) -> None:
    unexpected = _first_unexpected(run.failed)
    if unexpected is not None:
        raise unexpected
    node, exc = next(iter(run.failed.items()))
    others = f" (and {len(run.failed) - 1} more)" if len(run.failed) > 1 else ""
    raise StepsFailed(
        f"apply stopped at {node}: {describe_error(exc)}{others}",
        failures=run.failed,
        field=node,
        fix="fix the cause and run apply again (it resumes where it stopped), or destroy to remove what was made",
    ) from exc


# ----- inventory, status, verify -----


def inventory(ctx: LabContext, types: Sequence[Any] = DELETABLE_TYPES + COMPANION_TYPES) -> list[Found]:
    """Every resource tagged with this lab and learner, read type by type with describe calls."""
    found: list[Found] = []
    for resource_type in types:
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


# ----- destroy -----


def destroy_graph(config: LabConfig, found: Sequence[Found]) -> dict[str, Resource]:
    """The full graph of a lab that made its own VPC, with every reader and key pair that exists."""
    indexes = [int(m.group(1)) for f in found if (m := re.fullmatch(r"db-reader-(\d+)", f.node))]
    readers = min(max([config.readers, *indexes]), MAX_READERS)
    graph = lab_graph(dataclasses.replace(config, vpc="create"), readers=readers, key_pair=True)
    # Snapshots outlive their cluster: in the deletion order they come after it, as if it depended on them.
    graph[NODE_CLUSTER_SNAPSHOTS] = ClusterSnapshots(NODE_CLUSTER_SNAPSHOTS)
    graph[NODE_CLUSTER].depends_on += (NODE_CLUSTER_SNAPSHOTS,)
    # Detached interfaces hold their subnet and groups: after the instance, before what they sit in.
    holds = (NODE_PUBLIC_SUBNET, *NODE_DB_SUBNETS, NODE_SG_APP, NODE_SG_DB)
    graph[NODE_LEFTOVER_INTERFACES] = LeftoverInterfaces(NODE_LEFTOVER_INTERFACES, holds)
    graph[NODE_INSTANCE].depends_on += (NODE_LEFTOVER_INTERFACES,)
    return graph


@dataclass
class Teardown:
    """What destroy deletes and in which order: the ids of each node, and the nodes that must go before it."""

    graph: dict[str, Resource]
    targets: dict[str, list[str]]
    order: dict[str, list[str]]

    def waves(self) -> list[list[str]]:
        """Deletion waves: every node of a wave can go at once, after all earlier waves."""
        return [sorted(wave) for wave in waves(self.order)]


def teardown(config: LabConfig, found: Sequence[Found]) -> Teardown:
    """The deletion plan for the resources `found` (from inventory(ctx, DELETABLE_TYPES))."""
    graph = destroy_graph(config, found)
    targets: dict[str, list[str]] = {}
    for item in found:
        if item.node in graph:
            targets.setdefault(item.node, []).append(item.resource_id)
    dependents = reversed_graph({name: node.depends_on for name, node in graph.items()})
    return Teardown(graph, targets, _restricted(dependents, set(targets)))


def _restricted(depends_on: Mapping[str, Sequence[str]], keep: set[str]) -> dict[str, list[str]]:
    """The graph over `keep` only, where a dropped node's edges pass through to its own neighbours."""
    result: dict[str, list[str]] = {}
    for node in keep:
        seen: set[str] = set()
        stack, reached = list(depends_on[node]), set()
        while stack:
            other = stack.pop()
            if other in seen or other not in depends_on:
                continue
            seen.add(other)
            if other in keep:
                reached.add(other)
            else:
                stack.extend(depends_on[other])
        result[node] = sorted(reached)
    return result


def _delete_step(ctx: LabContext, resource: Resource, resource_ids: list[str]) -> str:
    started = time.monotonic()
    with step_scope(resource.node):
        for resource_id in resource_ids:
            try:
                resource.delete(ctx, resource_id)
            except Exception as exc:
                if "NotFound" not in error_code(exc) and error_code(exc) != "NoSuchEntity":
                    raise
    return f"deleted {', '.join(resource_ids)} ({time.monotonic() - started:.1f} s)"


def destroy(
    config: LabConfig,
    backend: Backend | None = None,
    *,
    progress: Progress | None = None,
    stream: TextIO | None = None,
    timing: Timing | None = None,
    max_workers: int = 8,
    quiet: bool = False,
) -> pd.DataFrame:
    """Delete every resource tagged with this lab and learner, dependents first; return what remains.

    The returned table comes from `verify` and is empty when the lab is gone. A step that still fails
    after bounded retries raises StepsFailed (its `.remaining` holds the same table). `quiet=True` shows
    no progress.
    """
    stream = io.StringIO() if quiet else stream
    _finish_interrupted_runs()
    backend = backend or config.make_backend()
    check_backend_region(config, backend)
    ctx = LabContext(config, backend, timing)
    say(f"deleting from: {backend.banner()}", stream)
    plan = teardown(config, inventory(ctx, DELETABLE_TYPES))
    progress = progress or progress_for("destroy", len(plan.order), stream)
    run = run_graph(
        plan.order,
        lambda node: _delete_step(ctx, plan.graph[node], plan.targets[node]),
        progress,
        action=lambda node: "delete",
        keep_going=True,
        max_workers=max_workers,
    )
    remaining = verify(config, backend)
    progress.close(f"{len(run.done)} deleted, {len(run.failed)} failed, {len(remaining)} resources remain")
    if run.failed:
        unexpected = _first_unexpected(run.failed)
        if unexpected is not None:
            raise unexpected
        node, exc = next(iter(run.failed.items()))
        error = StepsFailed(
            f"destroy could not delete {node}: {describe_error(exc)}; {len(remaining)} resources remain",
            failures=run.failed,
            field=node,
            fix="run destroy again in a minute (AWS may still be releasing it); `labkit status` lists what is left",
        )
        error.remaining = remaining
        raise error from exc
    return remaining
