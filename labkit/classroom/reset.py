"""Reset a class: delete the chosen learners' labs, and nothing else, in an order AWS accepts.

A dry run (the default) shows each deletion in its wave, plus what looked related but will not be
touched and why. With `yes=True` each learner's lab goes through `labkit.lab.destroy.destroy` (dependents
first, bounded retries, deletion protection off, no final snapshot, detached interfaces removed, then a
verify); learners run side by side, and one failure stops neither the other learners nor the parts of
the same lab that do not wait for it. The report (JSON and a table) says what was deleted, what failed
and why, and what is left.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from labkit.aws.backend import Backend
from labkit.aws.patience import Timing
from labkit.classroom.scan import RegionScan, Seen, check_names, class_backends, format_age, now, parse_age, scan
from labkit.classroom.status import valid_pair
from labkit.config import LabConfig
from labkit.display import Progress, markdown_table, say
from labkit.errors import ConfigError
from labkit.home import labkit_home
from labkit.inputs import check_output_folder
from labkit.lab.apply import StepsFailed, describe_error
from labkit.lab.destroy import Teardown, destroy, teardown
from labkit.lab.graph import deletion_order
from labkit.lab.inventory import inventory
from labkit.lab.resources import LabContext

PLAN_COLUMNS = ["region", "learner", "wave", "what", "node", "id"]
SKIP_COLUMNS = ["region", "what", "id", "lab", "learner", "reason"]
OUTCOME_COLUMNS = ["region", "learner", "order", "what", "node", "id", "result", "reason"]


@dataclass(frozen=True)
class Deletion:
    """One planned deletion: wave 1 goes first; everything in a wave can go at once."""

    region: str
    lab: str
    learner: str
    wave: int
    what: str
    node: str
    id: str


@dataclass(frozen=True)
class Untouched:
    """Something reset leaves alone, and why."""

    region: str
    what: str
    id: str
    lab: str
    learner: str
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What happened to one resource: deleted, failed, not attempted, or still there."""

    region: str
    learner: str
    order: int | None
    what: str
    node: str
    id: str
    result: str
    reason: str = ""


@dataclass
class Target:
    """One learner's lab in one region, chosen for reset, with its deletion plan."""

    scan: RegionScan
    config: LabConfig
    plan: Teardown
    kinds: dict[str, str]  # node -> kind

    @property
    def region(self) -> str:
        return self.config.region

    def deletions(self) -> list[Deletion]:
        config = self.config
        return [
            Deletion(config.region, config.lab, config.learner, index, self.kinds[node], node, resource_id)
            for index, wave in enumerate(self.plan.waves(), start=1)
            for node in wave
            for resource_id in sorted(self.plan.targets[node])
        ]


@dataclass
class ResetReport:
    """The plan (dry run) or the result (after `yes=True`) of a class reset."""

    lab: str
    dry_run: bool
    planned: list[Deletion]
    untouched: list[Untouched]
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    @property
    def deleted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == "deleted"]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result != "deleted"]

    @property
    def ok(self) -> bool:
        return not self.dry_run and not self.failed

    def plan_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(d) for d in self.planned], columns=PLAN_COLUMNS)

    def untouched_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(u) for u in self.untouched], columns=SKIP_COLUMNS)

    def outcome_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame([asdict(o) for o in self.outcomes], columns=OUTCOME_COLUMNS)
        return frame.astype({"order": "Int64"})  # whole numbers, blank where nothing was deleted

    def summary(self) -> str:
        learners = len({(d.region, d.learner) for d in self.planned})
        if self.dry_run:
            return f"dry run: would delete {len(self.planned)} resources of {learners} learners of lab {self.lab}"
        return (
            f"reset of lab {self.lab}: {len(self.deleted)} deleted, {len(self.failed)} not deleted "
            f"({learners} learners, {self.seconds:.1f} s)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "dry_run": self.dry_run,
            "summary": self.summary(),
            "planned": [asdict(d) for d in self.planned],
            "outcomes": [asdict(o) for o in self.outcomes],
            "not_touched": [asdict(u) for u in self.untouched],
            "seconds": round(self.seconds, 2),
            "files": self.files,
        }

    def table(self) -> str:
        """The report as text: the deletions (planned or done), then what was not touched."""
        sections = [self.summary()]
        if self.dry_run:
            sections += ["", "would delete, wave by wave:", _text(self.plan_frame())]
        else:
            done = self.outcome_frame().sort_values(["region", "learner", "order"], na_position="last", kind="stable")
            sections += ["", "result (order: when each deletion finished):", _text(done)]
        sections += ["", "not touched:", _text(self.untouched_frame())]
        return "\n".join(sections)

    def __repr__(self) -> str:
        return self.table()

    def _repr_markdown_(self) -> str:
        body = self.plan_frame() if self.dry_run else self.outcome_frame()
        return f"**{self.summary()}**\n\n{markdown_table(body)}\n\n*Not touched:*\n\n{markdown_table(self.untouched_frame())}"


def _text(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False) if not frame.empty else "(none)"


# ----- choosing what to reset -----


def _untouched(items: Iterable[Seen], reason: str) -> list[Untouched]:
    return [Untouched(s.region, s.kind, s.resource_id, s.lab or "", s.learner or "", reason) for s in items]


def _grouped(region_scan: RegionScan, lab: str, learner: str, reason: str) -> Untouched:
    count = len(region_scan.of(lab, learner))
    return Untouched(region_scan.region, f"{count} resources", "*", lab, learner, reason)


def _looks_related(item: Seen, lab: str) -> bool:
    named = item.name.startswith(f"{lab}-") or item.resource_id.startswith(f"{lab}-")
    return not item.tagged and (named or item.lab == lab)


def choose(
    scans: Sequence[RegionScan], lab: str, learners: set[str], older_than: timedelta | None
) -> tuple[list[tuple[RegionScan, str]], list[Untouched]]:
    """The learners whose lab in each region is reset, and what is left alone with the reason."""
    chosen: list[tuple[RegionScan, str]] = []
    skipped: list[Untouched] = []
    taken = now()
    for region_scan in scans:
        for pair_lab, learner in sorted(region_scan.pairs()):
            created = region_scan.created(pair_lab, learner)
            if pair_lab != lab:
                reason = f"belongs to lab {pair_lab}, not {lab}"
            elif not valid_pair(pair_lab, learner):
                reason = "its tags name no learner labkit could have made"
            elif learners and learner not in learners:
                reason = "learner not selected"
            elif older_than is not None and created is None:
                reason = "age unknown (nothing in it records a creation time); name the learner to reset it"
            elif older_than is not None and taken - created < older_than:
                reason = f"lab is {format_age(taken - created)} old, younger than {format_age(older_than)}"
            else:
                chosen.append((region_scan, learner))
                continue
            skipped.append(_grouped(region_scan, pair_lab, learner, reason))
        related = [s for s in region_scan.seen if _looks_related(s, lab)]
        skipped += _untouched(related, "not a lab resource: it lacks the labkit:lab and labkit:learner tags")
    return chosen, skipped


def target(region_scan: RegionScan, lab: str, learner: str) -> Target:
    """Inventory one learner's lab the way destroy does, and plan its deletion."""
    backend = region_scan.backend
    config = LabConfig(lab=lab, learner=learner, region=backend.region, backend=backend.name)
    found = inventory(LabContext(config, backend), deletion_order())
    return Target(region_scan, config, teardown(config, found), {f.node: f.kind for f in found})


# ----- running it -----


class _Recorder(Progress):
    """Records which nodes finished and which failed, in order, and prints one line per event."""

    _print_lock = threading.Lock()

    def __init__(self, target: Target, stream: TextIO | None, order: Iterator[int]) -> None:
        super().__init__("reset", len(target.plan.order))
        self.prefix = f"{target.region} {target.config.learner}"
        self.stream = stream
        self.order = order  # shared by the learners of one reset: the order deletions finished in
        self.finished_at: dict[str, int] = {}
        self.failures: dict[str, str] = {}

    def _line(self, text: str) -> None:
        with self._print_lock:
            say(f"{self.prefix}: {text}", self.stream)

    def finished(self, node: str, outcome: str) -> None:
        super().finished(node, outcome)
        self.finished_at[node] = next(self.order)
        self._line(f"{node} {outcome}")

    def failed(self, node: str, message: str) -> None:
        super().failed(node, message)
        self.failures[node] = message
        self._line(f"{node} FAILED: {message}")


def _run(target: Target, stream: TextIO | None, timing: Timing | None, order: Iterator[int]) -> list[Outcome]:
    """Destroy one learner's lab and say what happened to every resource of its plan."""
    recorder = _Recorder(target, stream, order)
    config, region = target.config, target.region
    remaining: pd.DataFrame | None = None
    crash = ""
    try:
        remaining = destroy(config, target.scan.backend, progress=recorder, stream=io.StringIO(), timing=timing)
    except StepsFailed as exc:
        remaining = exc.remaining
    except Exception as exc:  # a bug or an outage for one learner must not stop the others
        crash = f"reset of this learner stopped: {describe_error(exc)}"
    outcomes = []
    blocked = ", ".join(sorted(recorder.failures)) or "an earlier step"
    for item in target.deletions():
        if item.node in recorder.finished_at:
            result, reason, order = "deleted", "", recorder.finished_at[item.node]
        elif item.node in recorder.failures:
            result, reason, order = "failed", recorder.failures[item.node], None
        else:
            result, reason, order = "not attempted", crash or f"waits for {blocked}, which failed", None
        outcomes.append(Outcome(region, config.learner, order, item.what, item.node, item.id, result, reason))
    planned = {d.id for d in target.deletions()}
    for row in [] if remaining is None else remaining.to_dict(orient="records"):
        if row["id"] not in planned:
            reason = "still listed after the reset (it goes with its instance or cluster; check again shortly)"
            outcomes.append(
                Outcome(region, config.learner, None, row["what"], row["node"], row["id"], "remains", reason)
            )
    return outcomes


def write_report(report: ResetReport, folder: Path) -> dict[str, str]:
    """Write the report as JSON and as a text table; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"class-reset-{report.lab}-{now().strftime('%Y%m%d-%H%M%S-%f')}"
    files = {"json": str(stem.with_suffix(".json")), "table": str(stem.with_suffix(".txt"))}
    report.files = files
    Path(files["json"]).write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    Path(files["table"]).write_text(report.table() + "\n")
    return files


def class_reset(
    *,
    lab: str | None = None,
    learners: Iterable[str] = (),
    regions: Sequence[str] = (),
    backend: str | Backend | None = None,
    backends: Sequence[Backend] = (),
    older_than: str | float | timedelta | None = None,
    yes: bool = False,
    report_dir: str | Path | None = None,
    stream: TextIO | None = None,
    timing: Timing | None = None,
    max_parallel: int = 4,
    quiet: bool = False,
) -> ResetReport:
    """Plan (default) or, with `yes=True`, carry out the reset of one lab's learners.

    `lab` defaults to the lab of the saved config; `learners` narrows it to some learners; `older_than`
    ('2h') keeps labs that began more recently. Only resources tagged with that lab and a chosen learner
    are ever deleted. After a real reset the report is written under `report_dir` (default LABKIT_HOME/reports).
    `quiet=True` prints no progress (the report says what happened).
    """
    started = time.monotonic()
    stream = io.StringIO() if quiet else stream
    lab = lab if lab is not None else LabConfig.load().lab
    chosen_learners = set(learners)
    check_names(lab, chosen_learners)
    age = parse_age(older_than)
    if max_parallel < 1:
        raise ConfigError(f"must be 1 or more, got {max_parallel}", field="max_parallel", fix="use e.g. 4")
    if report_dir:
        check_output_folder(report_dir, field="--report-dir", example="~/class-reports")
    scans = scan(class_backends(regions, backend, backends))
    picked, untouched = choose(scans, lab, chosen_learners, age)
    targets = [target(region_scan, lab, learner) for region_scan, learner in picked]
    planned = [d for t in targets for d in t.deletions()]
    report = ResetReport(lab, not yes, planned, untouched)
    if not yes:
        report.seconds = time.monotonic() - started
        return report
    say(f"resetting {len(targets)} labs of lab {lab}: {len(planned)} resources", stream)
    order = itertools.count(1)  # next() on a count is atomic under the GIL
    with ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="labkit-reset") as pool:
        results = list(pool.map(lambda t: _run(t, stream, timing, order), targets))
    report.outcomes = [o for outcomes in results for o in outcomes]
    report.seconds = time.monotonic() - started
    write_report(report, Path(report_dir).expanduser() if report_dir else labkit_home() / "reports")
    say(report.summary(), stream)
    return report
