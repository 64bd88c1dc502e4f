"""The instructor's view of progress: which exercises each learner passed and when, from the evidence checks leave.

Two sources, one table:
- **homes**: each learner's labkit home holds `progress.jsonl`, signed lines that labkit.workbook.progress writes
  when a check passes. In the sandbox that is the local home; on a class hub, one home per learner account
  (`homes=["/home/*/.labkit"]`, read as root or as an instructor who can read them). Every record is verified;
  a record that fails (tampered, unsigned, wrong key, unreadable) never counts as a pass and is flagged, and a
  key that signs records in two homes is flagged as a copied home.
- **tags**: the same check tags the learner's own app security group `labkit:progress:<exercise>` = the time of
  its first pass, so on AWS the instructor collects from the account (`tags=True`, with the class's regions),
  without reaching learners' machines. Tags are not signed (the learner's own IAM identity wrote them) and go
  with the lab at cleanup: collect before the reset.

Neither proves a check passed beyond doubt (see labkit.workbook.progress): both are progress a learner cannot
quietly edit, against resources the instructor can look at (`labkit class status`).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from labkit.aws.tags import TAG_LAB, TAG_LEARNER, tag_dict
from labkit.classroom.scan import check_names, class_backends
from labkit.config import CONFIG_FILE_NAME, LabConfig
from labkit.display import literal_html
from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home
from labkit.workbook.progress import KEY_FILE, OK, PROGRESS_FILE, Evidence, progress_tags, read_evidence

if TYPE_CHECKING:
    from labkit.aws.backend import Backend

TAG_VERDICT = "tag"  # a pass read from a tag on the lab: counts, but carries no signature
HOME_MARKERS = (PROGRESS_FILE, KEY_FILE, CONFIG_FILE_NAME)  # what makes a folder a labkit home
# The CSV columns (README, "Progress"): one row per learner and source, one 1/0 column per exercise after these.
WIDE_COLUMNS = ["learner", "lab", "source", "passed", "exercises", "flagged"]
# The long CSV: one row per record, valid or not.
LONG_COLUMNS = ["learner", "lab", "source", "exercise", "notebook", "at", "valid", "verdict", "checked",
                "resources", "key", "line"]  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell that starts so as a formula


def workbook_exercises() -> list[str] | None:
    """The exercise ids the workbook declares, in workbook order, or None while it declares none.

    The one place that knows where the exercises are listed (labkit.workbook.exercises' REGISTRY: id -> an
    exercise with a `.notebook`). Without it, the columns are the exercises found in valid evidence.
    """
    try:
        # the workbook's exercise list, read only when the columns are laid out (a workbook may declare none yet)
        from labkit.workbook.exercises import REGISTRY  # type: ignore[attr-defined]
    except ImportError:
        return None
    declared = list(REGISTRY.items())
    if not declared:
        return None
    order = {exercise_id: n for n, (exercise_id, _) in enumerate(declared)}
    return sorted(order, key=lambda e: (str(getattr(REGISTRY[e], "notebook", "")), order[e]))


@dataclass(frozen=True)
class Collected:
    """One record as collected: the evidence, and where it came from (a home's path, or `tags:REGION`)."""

    source: str
    evidence: Evidence

    @property
    def counts(self) -> bool:
        return self.evidence.verdict in (OK, TAG_VERDICT)


# ----- finding the homes -----


def _is_home(path: Path) -> bool:
    return path.is_dir() and any((path / marker).exists() for marker in HOME_MARKERS)


def _readable(path: Path, flag: str) -> None:
    """A home is 0700: only its owner (and root) can look inside; say so instead of finding nothing."""
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(
            f"cannot read {path}: it belongs to another account",
            field=flag,
            fix="run as an account that can read the learners' homes (on a class hub: `sudo .venv/bin/labkit ...`)",
        )


def find_homes(homes: Iterable[str | Path], *, flag: str = "homes") -> list[Path]:
    """Each given home (a folder, or its progress.jsonl), or each home a glob pattern matches; ConfigError naming
    `flag` for a path that does not exist, is not a labkit home, or a pattern that matches none."""
    example = "/home/*/.labkit"
    found: list[Path] = []
    for given in homes:
        text = str(given)
        if glob.has_magic(text):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(text)))]
            for match in matches:
                _readable(match, flag)
            chosen = [m for m in matches if _is_home(m)]
            if not chosen:
                raise ConfigError(
                    f"{text!r} matches no labkit home ({len(matches)} paths, none holding {' or '.join(HOME_MARKERS)})",
                    field=flag,
                    fix=f"give a pattern that ends at the learners' homes, e.g. '{example}' (quoted)",
                )
            found += chosen
            continue
        path = Path(text).expanduser()
        if path.name == PROGRESS_FILE and path.is_file():
            path = path.parent
        if not path.exists():
            raise ConfigError(
                f"{path} does not exist",
                field=flag,
                fix=f"give each learner's labkit home (the folder holding {PROGRESS_FILE}), or a quoted glob "
                f"such as '{example}'",
            )
        _readable(path, flag)
        if not _is_home(path):
            raise ConfigError(
                f"{path} is not a labkit home (it holds no {', '.join(HOME_MARKERS)})",
                field=flag,
                fix=f"name the homes themselves, e.g. '{path}/*/.labkit' for one home per learner under it",
            )
        found.append(path)
    return list(dict.fromkeys(p.resolve() for p in found))


def _home_identity(home: Path) -> tuple[str, str]:
    """(lab, learner) the home's lab.toml names, ('', '') when it has none or it does not parse."""
    try:
        config = LabConfig.load(home / CONFIG_FILE_NAME) if (home / CONFIG_FILE_NAME).exists() else None
    except LabkitError:
        config = None
    return (config.lab, config.learner) if config else ("", "")


Enrolled = tuple[str, str, str]  # (lab, learner, source): a learner seen in a source, with or without evidence


def collect_homes(homes: Sequence[Path]) -> tuple[list[Collected], list[Enrolled], list[str]]:
    """Every record of every home, verified; the learner each home's lab.toml names (so one who passed nothing
    yet still has a row); unreadable lines take that learner."""
    rows: list[Collected] = []
    enrolled: list[Enrolled] = []
    notes: list[str] = []
    for home in homes:
        try:
            found = read_evidence(home)
        except LabkitError as exc:
            notes.append(f"{home}: {exc.message}")
            continue
        lab, learner = _home_identity(home)
        if learner:
            enrolled.append((lab, learner, str(home)))
        for item in found:
            if not item.learner:  # an unreadable line: it belongs to the home's learner
                item = dataclasses.replace(item, lab=item.lab or lab, learner=learner)
            rows.append(Collected(str(home), item))
    return rows, enrolled, notes


# ----- the tags -----


def collect_tags(backends: Sequence[Backend], lab: str | None = None) -> tuple[list[Collected], list[Enrolled]]:
    """A pass for every `labkit:progress:<exercise>` tag on the lab security groups in each backend's region, and
    every learner whose lab has a security group (so one who passed nothing yet still has a row)."""
    rows: list[Collected] = []
    enrolled: list[Enrolled] = []
    for backend in backends:
        pages = backend.client("ec2").get_paginator("describe_security_groups")
        filters = [{"Name": "tag-key", "Values": [TAG_LAB]}] if lab is None else [
            {"Name": f"tag:{TAG_LAB}", "Values": [lab]}]  # fmt: skip
        for page in pages.paginate(Filters=filters):
            for group in page["SecurityGroups"]:
                tags = tag_dict(group.get("Tags"))
                if not tags.get(TAG_LAB) or not tags.get(TAG_LEARNER):
                    continue
                enrolled.append((tags[TAG_LAB], tags[TAG_LEARNER], f"tags:{backend.region}"))
                for exercise, at in progress_tags(group.get("Tags")).items():
                    verdict = TAG_VERDICT if _is_time(at) else "unreadable"
                    item = Evidence(0, verdict, exercise=exercise, at=at, lab=tags[TAG_LAB],
                                    learner=tags[TAG_LEARNER], backend=backend.name, region=backend.region,
                                    resources={"security_group": group["GroupId"]})  # fmt: skip
                    rows.append(Collected(f"tags:{backend.region}", item))
    return rows, list(dict.fromkeys(enrolled))


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


# ----- the result -----


def _safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text, never runs (OWASP: CSV injection)."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _short_time(at: str) -> str:
    """`2026-12-05T08:12:54Z` as `12-05 08:12` for the table (UTC; the full time is in JSON and CSV)."""
    return f"{at[5:10]} {at[11:16]}" if len(at) >= 16 else at


@dataclass
class LearnerProgress:
    """One learner's progress from one source: the first counted pass of each exercise, and what is flagged."""

    lab: str
    learner: str
    source: str
    passes: dict[str, str] = field(default_factory=dict)  # exercise -> time of the first counted pass
    failed: dict[str, int] = field(default_factory=dict)  # verdict -> records that did not verify
    shares_key_with: list[str] = field(default_factory=list)  # other homes whose valid records carry this key

    @property
    def flagged(self) -> int:
        """Records that did not verify (they count as no pass)."""
        return sum(self.failed.values())

    @property
    def flags(self) -> list[str]:
        found = [f"{count} {verdict}" for verdict, count in self.failed.items()]
        if self.shares_key_with:
            found.append(f"same key as {', '.join(self.shares_key_with)} (a copied home?)")
        return found


@dataclass
class ClassProgress:
    """Every learner's progress: `table` (one row per learner and source), `evidence` (one row per record)."""

    records: list[Collected]
    exercises: list[str]
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # the homes and tag regions read
    enrolled: list[Enrolled] = field(default_factory=list)  # learners seen, with or without evidence

    # ----- per learner -----
    def learners(self) -> list[LearnerProgress]:
        """One entry per (lab, learner, source), sorted; a home's key shared with another home is flagged."""
        groups = {key: LearnerProgress(*key) for key in self.enrolled}
        keys: dict[str, set[str]] = {}
        for row in sorted(self.records, key=lambda r: (r.evidence.at, r.evidence.line)):
            item = row.evidence
            learner = groups.setdefault(
                (item.lab, item.learner, row.source), LearnerProgress(item.lab, item.learner, row.source)
            )
            if row.counts:
                learner.passes.setdefault(item.exercise, item.at)
            else:
                learner.failed[item.verdict] = learner.failed.get(item.verdict, 0) + 1
            if item.verdict == OK and item.key:
                keys.setdefault(item.key, set()).add(row.source)
        for learner in groups.values():
            shared = {s for sources in keys.values() if learner.source in sources and len(sources) > 1 for s in sources}
            learner.shares_key_with = sorted(shared - {learner.source})
        return [groups[k] for k in sorted(groups)]

    # ----- tables -----
    @property
    def table(self) -> pd.DataFrame:
        """One row per learner and source: each exercise's first pass (UTC, `MM-DD HH:MM`) or '', and flags."""
        rows = []
        for learner in self.learners():
            row: dict[str, Any] = {"learner": learner.learner, "lab": learner.lab, "source": learner.source}
            row["passed"] = f"{len(set(learner.passes) & set(self.exercises))}/{len(self.exercises)}"
            row |= {exercise: _short_time(learner.passes.get(exercise, "")) for exercise in self.exercises}
            row["flags"] = "; ".join(learner.flags)
            rows.append(row)
        return pd.DataFrame(rows, columns=["learner", "lab", "source", "passed", *self.exercises, "flags"])

    @property
    def evidence(self) -> pd.DataFrame:
        """One row per record, valid or not, in the long CSV's columns."""
        rows = [
            {
                "learner": r.evidence.learner, "lab": r.evidence.lab, "source": r.source,
                "exercise": r.evidence.exercise, "notebook": r.evidence.notebook, "at": r.evidence.at,
                "valid": r.counts, "verdict": r.evidence.verdict, "checked": r.evidence.checked,
                "resources": " ".join(f"{k}={v}" for k, v in sorted(r.evidence.resources.items())),
                "key": r.evidence.key, "line": r.evidence.line,
            }
            for r in self.records
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=LONG_COLUMNS)

    def gradebook(self) -> pd.DataFrame:
        """The wide CSV: one row per learner and source, `passed` of `exercises`, `flagged` records, then one
        column per exercise: 1 when a counted pass exists, else 0."""
        rows = []
        for learner in self.learners():
            row: dict[str, Any] = {"learner": learner.learner, "lab": learner.lab, "source": learner.source}
            marks = {exercise: int(exercise in learner.passes) for exercise in self.exercises}
            row |= {"passed": sum(marks.values()), "exercises": len(self.exercises), "flagged": learner.flagged}
            rows.append(row | marks)
        return pd.DataFrame(rows, columns=[*WIDE_COLUMNS, *self.exercises])

    def write_csv(self, path: str | Path, *, long: bool = False) -> Path:
        """Write the wide CSV (or the long one), 0600 (grades are personal), replacing the file whole."""
        target = csv_path(path)
        frame = (self.evidence if long else self.gradebook()).map(_safe_cell)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(buffer.getvalue())
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise LabkitError(
                f"cannot write {target} ({exc.strerror or exc})", field="csv", fix="choose a folder you can write"
            ) from None
        return target

    # ----- output -----
    def to_dict(self) -> dict[str, Any]:
        learners = [
            {"learner": p.learner, "lab": p.lab, "source": p.source, "passes": dict(sorted(p.passes.items())),
             "passed": len(set(p.passes) & set(self.exercises)), "exercises": len(self.exercises), "flags": p.flags}
            for p in self.learners()
        ]  # fmt: skip
        return {
            "exercises": self.exercises,
            "learners": learners,
            "records": [{"source": r.source, **r.evidence.to_dict(), "valid": r.counts} for r in self.records],
            "notes": self.notes,
        }

    def __str__(self) -> str:
        if not self.records and not self.enrolled:
            read = ", ".join(self.sources) or "nothing"
            return "\n".join([f"no evidence yet: no check has passed in what was read ({read})", *self.notes])
        frame = self.table
        text = frame.to_string(index=False) if not frame.empty else "(no learner)"
        flagged = sum(p.flagged for p in self.learners())
        lines = [text, f"{len(frame)} learners, {len(self.exercises)} exercises; times in UTC (MM-DD HH:MM)"]
        if flagged:
            lines.append(f"{flagged} record{'s' * (flagged > 1)} did not verify and count as no pass: see the flags")
        return "\n".join([*lines, *(f"note: {note}" for note in self.notes)])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head = f"<p>{len(self.table)} learners, {len(self.exercises)} exercises; times in UTC (MM-DD HH:MM)</p>"
        notes = "".join(f"<p>note: {n}</p>" for n in self.notes)
        return literal_html(head + self.table.to_html(index=False) + notes)


def csv_path(path: str | Path, *, flag: str = "csv") -> Path:
    """Where a CSV may go: a file in a folder that exists (ConfigError naming `flag` otherwise), before any work."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(
            f"{target} is a folder", field=flag, fix=f"give a file name, e.g. {flag_example(flag, target)}"
        )
    if not target.parent.is_dir():
        raise ConfigError(
            f"the folder {target.parent} does not exist",
            field=flag,
            fix=f"create it first (`mkdir -p {target.parent}`) or write the CSV elsewhere",
        )
    return target


def flag_example(flag: str, folder: Path) -> str:
    example = folder / "progress.csv"
    return f"{flag} {example}" if flag.startswith("--") else f"{flag}='{example}'"


def exercise_columns(records: Sequence[Collected], declared: list[str] | None) -> tuple[list[str], list[str]]:
    """The table's exercise columns and a note for evidence of exercises the workbook does not declare."""
    seen = list(dict.fromkeys(r.evidence.exercise for r in sorted(records, key=lambda r: r.evidence.exercise)
                              if r.counts))  # fmt: skip
    if declared is None:
        return seen, []
    unknown = [e for e in seen if e not in declared]
    notes = [f"passes of exercises the workbook does not declare (renamed?): {', '.join(unknown)}"] if unknown else []
    return declared, notes


def class_progress(
    homes: str | Path | Sequence[str | Path] = (),
    *,
    tags: bool = False,
    lab: str | None = None,
    learners: Iterable[str] = (),
    regions: Sequence[str] = (),
    backend: str | Backend | None = None,
    backends: Sequence[Backend] = (),
) -> ClassProgress:
    """Each learner's passed exercises, verified, from their homes and (with `tags=True`) from the tags on their labs.

    `homes`: paths or glob patterns of learners' labkit homes (default: this home, unless `tags` is on alone).
    `tags=True` reads the `labkit:progress:*` tags in `regions` (or `backends`, one per region). `lab` and
    `learners` filter. The columns are the workbook's exercises (workbook_exercises()), else those passed.
    """
    wanted = list(learners)
    check_names(lab, wanted)
    given = [homes] if isinstance(homes, str | Path) else list(homes)
    chosen = find_homes(given) if given else ([] if tags else [labkit_home(create=False)])
    records, enrolled, notes = collect_homes(chosen)
    sources = [str(home) for home in chosen]
    if tags:
        regional = class_backends(regions, backend, backends)
        tagged, seen = collect_tags(regional, lab)
        records, enrolled, sources = records + tagged, enrolled + seen, sources + [f"tags:{b.region}" for b in regional]

    def chosen_one(lab_name: str, learner: str) -> bool:
        return (lab is None or lab_name == lab) and (not wanted or learner in wanted)

    records = [r for r in records if chosen_one(r.evidence.lab, r.evidence.learner)]
    enrolled = [e for e in enrolled if chosen_one(e[0], e[1])]
    exercises, more = exercise_columns(records, workbook_exercises())
    return ClassProgress(records, exercises, notes + more, sources, enrolled)
