"""Destroy a lab: delete every resource tagged with its lab and learner, dependents first, then verify.

The deletion plan is the lab graph reversed: the full graph of a lab that made its own VPC, with every reader
and key pair that exists, plus one node per type only destroy handles (snapshots, detached interfaces).
"""

from __future__ import annotations

import dataclasses
import io
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

import pandas as pd

from labkit.aws.backend import Backend
from labkit.aws.errors import is_not_found
from labkit.aws.patience import Timing
from labkit.config import MAX_READERS, LabConfig
from labkit.display import Progress, progress_for, say
from labkit.lab.apply import (
    StepsFailed,
    describe_error,
    finish_interrupted_runs,
    lab_turn,
    raised_as_is,
    run_graph,
)
from labkit.lab.graph import deletion_order, lab_graph, reversed_graph, waves, with_cleanup_nodes
from labkit.lab.inventory import inventory, verify
from labkit.lab.plan import check_backend_region
from labkit.lab.resources import Found, LabContext, Resource, step_scope


def destroy_graph(config: LabConfig, found: Sequence[Found]) -> dict[str, Resource]:
    """The full graph of a lab that made its own VPC, with every reader and key pair that exists, and the
    nodes only destroy handles."""
    numbers = [int(m.group(1)) for f in found if (m := re.fullmatch(r"db-(\d+)", f.node))]
    readers = min(max([config.readers, *(n - 1 for n in numbers)]), MAX_READERS)
    return with_cleanup_nodes(lab_graph(dataclasses.replace(config, vpc="create"), readers=readers, key_pair=True))


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
    """The deletion plan for the resources `found` (from inventory(ctx, deletion_order()))."""
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
                if not is_not_found(exc):
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
    notice, stream = (sys.stderr if quiet else stream), (io.StringIO() if quiet else stream)
    with lab_turn(config, notice):  # one apply or destroy of this lab and learner at a time
        finish_interrupted_runs()
        backend = backend or config.make_backend()
        check_backend_region(config, backend)
        ctx = LabContext(config, backend, timing)
        say(f"deleting from: {backend.banner()}", stream)
        plan = teardown(config, inventory(ctx, deletion_order()))
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
        left = f"{len(remaining)} resources remain" if len(remaining) else "nothing is left"
        progress.close(f"{len(run.done)} deleted, {len(run.failed)} failed, {left}")
        if run.failed:
            as_is = raised_as_is(run.failed)
            if as_is is not None:
                raise as_is
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
