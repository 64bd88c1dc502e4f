"""Apply the plan: create what is missing, each node as soon as what it needs is usable.

Apply reads the account first (so a rerun, or a run after a failure or a kernel restart, creates only
what is missing), prints where changes will land, then works through the graph with a thread pool:
a node starts the moment all its dependencies are usable, so the EC2 and IAM branch never waits for
the cluster. The same graph runner deletes, in reverse, for destroy.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TextIO

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from botocore.parsers import ResponseParserError

from labkit.aws.backend import Backend
from labkit.aws.errors import error_code
from labkit.aws.patience import Timing
from labkit.config import LabConfig
from labkit.display import Progress, progress_for, say
from labkit.errors import LabkitError
from labkit.home import labkit_home
from labkit.lab.graph import lab_graph, stage_closure
from labkit.lab.plan import CREATE, USE, Plan, check_backend_region, read_plan
from labkit.lab.preflight import require_preflight
from labkit.lab.resources import LabContext, Resource, step_scope
from labkit.lab.resources.base import Change, not_found_yet
from labkit.locks import exclusive, lab_lock_path


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
    finish_interrupted_runs()
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


def finish_interrupted_runs() -> None:
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


def raised_as_is(failures: Mapping[str, BaseException]) -> BaseException | None:
    """The failure a run raises as it is rather than summarised: a bug rather than an AWS, network or user problem
    (it keeps its traceback); else an endpoint that stopped answering, which the other steps' failures follow
    from (the sandbox died under the run: the CLI says so and how to carry on). A cut-off answer (botocore's
    ResponseParserError, which is no BotoCoreError) is the network's problem, not a bug."""
    for exc in failures.values():
        if not isinstance(exc, LabkitError | ClientError | BotoCoreError | ResponseParserError):
            return exc
    return next((exc for exc in failures.values() if isinstance(exc, EndpointConnectionError)), None)


# ----- one at a time -----


def lab_turn(config: LabConfig, stream: TextIO | None) -> contextlib.AbstractContextManager[None]:
    """Apply and destroy of one lab and learner take turns on this machine (a file lock in the LABKIT home), so
    two at once never both find a resource missing and create it twice. Held for one call, never longer: a
    waiting caller is told who it waits for, and a holder that dies releases it."""

    def waiting(pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        say(
            f"another apply or destroy of lab {config.lab}, learner {config.learner} is running on this machine{who};"
            " waiting for it to finish",
            stream,
        )

    return exclusive(lab_lock_path(labkit_home(), config.lab, config.learner), on_wait=waiting)


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


def _converge(ctx: LabContext, resource: Resource, node: str) -> list[Change]:
    """Find what an existing resource still lacks and make it (each change is safe to repeat)."""
    changes = resource.converge(ctx, ctx.ids[node])
    for change in changes:
        change.make()
    return changes


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
        if verb == "created":  # its first calls may not see it yet (EC2 eventual consistency): retry NotFound
            changes = ctx.retry(lambda: _converge(ctx, resource, node), node, not_found_yet)
        else:
            changes = _converge(ctx, resource, node)
        fixes = fixed[node] = [change.description for change in changes]
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
    leave_exercises: bool = False,
) -> ApplyResult:
    """Create whatever the lab is missing, in dependency order, independent nodes at the same time.

    `only="network" | "database" | "compute"` builds one stage and what it depends on (one per notebook).
    `quiet=True` shows no progress (the result says what happened). `leave_exercises=True` (the notebooks) builds
    neither of the two rules between the app and database groups: the learner writes them in 01's exercises, and
    a later notebook's apply does not write them behind the learner's back.
    """
    started = time.monotonic()
    notice, stream = (sys.stderr if quiet else stream), (io.StringIO() if quiet else stream)
    with lab_turn(config, notice):  # one apply or destroy of this lab and learner at a time
        finish_interrupted_runs()  # before reading the account: a step left running may still create
        backend = backend or config.make_backend()
        check_backend_region(config, backend)
        checked = require_preflight(config, backend)  # on a real account: stop before creating anything
        if checked is not None:
            say(checked.headline(), stream)
        ctx = LabContext(config, backend, timing)
        ctx.leave_exercises = leave_exercises
        graph = lab_graph(config)
        if only is not None:
            keep = stage_closure(graph, only)
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
            progress.close(
                f"stopped: {len(run.failed)} failed, {len(run.done)} done, {len(run.not_started)} not started"
            )
            _raise_apply_failure(run)
        progress.close(f"done: {len(created)} created, {len(completed)} completed, {len(graph)} in the lab")
        return ApplyResult(dict(ctx.ids), created, completed, time.monotonic() - started, before)


def _raise_apply_failure(run: GraphRun) -> None:
    as_is = raised_as_is(run.failed)
    if as_is is not None:
        raise as_is
    node, exc = next(iter(run.failed.items()))
    others = f" (and {len(run.failed) - 1} more)" if len(run.failed) > 1 else ""
    raise StepsFailed(
        f"apply stopped at {node}: {describe_error(exc)}{others}",
        failures=run.failed,
        field=node,
        fix="fix the cause and run apply again (it resumes where it stopped), or destroy to remove what was made",
    ) from exc
