"""The learner's copies of the notebooks, made the way nbgrader releases an assignment.

The committed notebooks are the solved source: each exercise's solution sits in its cell between
`### BEGIN SOLUTION <exercise id>` and `### END SOLUTION` (nbgrader's delimiters), so nbval runs and checks the
solved workbook. A learner's copy replaces each such block with one placeholder line,
`labkit.your_turn("<id>")`, which stops Run All there with the task (labkit.workbook.exercises), and clears the
outputs of the solution and check cells, which would show the answer. Everything else, the other outputs
included, is copied as it is.

`release_notebooks()` writes the copies (by default into `LABKIT_HOME/notebooks`, what `make lab` opens) and never
overwrites one: a learner's copy holds the learner's work, so only missing notebooks are created, and the result
says which copies were kept.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home, private_dir
from labkit.inputs import check_output_folder

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
NOTEBOOKS = "[0-9][0-9]_*.ipynb"
LEARNER_FOLDER = "notebooks"  # under the labkit home
PLACEHOLDER = 'labkit.your_turn("{id}")  # your turn: replace this line with yours'
CHECK_CELL = re.compile(r"labkit\.exercise\(\s*[\"'](?P<id>[\w.-]+)[\"'][^)]*\)\s*\.check\(")


def source_folder() -> Path:
    """The solved notebooks of the repository labkit runs from."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def learner_folder() -> Path:
    """Where the learner's copies go by default: a folder of the learner's own labkit home."""
    return labkit_home() / LEARNER_FOLDER


def learner_source(source: str, where: str) -> tuple[str, list[str]]:
    """`source` with every solution block replaced by its placeholder, and the exercise ids replaced."""
    from labkit.workbook.exercises import REGISTRY  # the ids a placeholder may name

    lines, out, ids = source.splitlines(), [], []
    block: str | None = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            exercise_id = stripped[len(BEGIN) :].strip()
            if block is not None or exercise_id not in REGISTRY:
                problem = "a solution block inside another" if block is not None else f"no exercise {exercise_id!r}"
                raise LabkitError(
                    f"{where}: {problem}", field=where, fix=f"write `{BEGIN} <exercise id>` ... `{END}` around it"
                )
            block = exercise_id
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + PLACEHOLDER.format(id=exercise_id))
            ids.append(exercise_id)
        elif stripped.startswith(END):
            if block is None:
                raise LabkitError(f"{where}: {END} without {BEGIN}", field=where, fix=f"add the {BEGIN} <id> line")
            block = None
        elif block is None:
            out.append(line)
    if block is not None:
        raise LabkitError(f"{where}: the solution of {block} has no {END}", field=where, fix=f"close it with {END}")
    return "\n".join(out), ids


def learner_copy(notebook: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, list[str]]:
    """A learner's copy of a solved notebook, and the ids of the exercises left to the learner, in order."""
    copy = nbformat.from_dict(notebook)
    ids: list[str] = []
    for index, cell in enumerate(copy.cells):
        if cell.cell_type != "code":
            continue
        source, found = learner_source(cell.source, f"{name} cell {index}")
        if found or CHECK_CELL.search(cell.source):
            cell.source, cell.outputs, cell.execution_count = source, [], None  # the answer's output goes too
        ids += found
    return copy, ids


def _write_new(path: Path, notebook: nbformat.NotebookNode) -> bool:
    """Write `path` only if it does not exist (atomically: a complete file or none); False when it exists."""
    if path.exists():
        return False
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        nbformat.write(notebook, str(tmp))
        os.link(tmp, path)  # fails if the learner's copy exists: never replaced
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@dataclass
class Release:
    """What a release did: where the copies are, which it created, which it kept (the learner's own)."""

    out: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    exercises: dict[str, list[str]] = field(default_factory=dict)

    def __repr__(self) -> str:
        count = sum(len(ids) for name, ids in self.exercises.items() if name in self.created)
        lines = [f"learner notebooks in {self.out}"]
        if self.created:
            lines.append(f"  created {len(self.created)} ({count} exercises): {', '.join(self.created)}")
        if self.kept:
            lines.append(
                f"  kept {len(self.kept)}, yours already (never overwritten; rename one to get a fresh copy): "
                + ", ".join(self.kept)
            )
        return "\n".join(lines)


def release_notebooks(
    out: str | Path | None = None, *, source: str | Path | None = None, names: Iterable[str] | None = None
) -> Release:
    """Write the learner's copy of every workbook notebook into `out` (default: LABKIT_HOME/notebooks), creating
    only the missing ones; `names` picks some (e.g. ["01_network.ipynb"])."""
    source = Path(source) if source is not None else source_folder()
    if not source.is_dir():
        raise ConfigError(
            f"{source} is not a folder of notebooks", field="source", fix="name the solved notebooks' folder"
        )
    notebooks = sorted(source.glob(NOTEBOOKS))
    if names is not None:
        wanted = {n if n.endswith(".ipynb") else f"{n}.ipynb" for n in names}
        notebooks = [n for n in notebooks if n.name in wanted]
        if len(notebooks) != len(wanted):
            raise ConfigError(
                f"no such notebook in {source}: {sorted(wanted - {n.name for n in notebooks})}", field="names"
            )
    if out is not None:
        out = check_output_folder(out, field="--out", example="~/my-notebooks")
    target = private_dir(learner_folder()) if out is None else Path(out)
    target.mkdir(parents=True, exist_ok=True)
    release = Release(target)
    for notebook in notebooks:
        copy, ids = learner_copy(nbformat.read(notebook, as_version=4), notebook.name)
        release.exercises[notebook.name] = ids
        (release.created if _write_new(target / notebook.name, copy) else release.kept).append(notebook.name)
    return release
