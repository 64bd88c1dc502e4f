"""Run the workbook headless, in order, and say which notebook failed where: the instructor's check the day
before class (`labkit run-notebooks`).

Each notebook runs in a fresh kernel (nbclient), in name order, in a LABKIT home of the run's own, so the run
neither uses nor disturbs a learner's lab or sandbox. On the sandbox backend the run starts its own sandbox
there and stops it at the end; on `aws` (named explicitly) the kernels use your account, and the summary says
which account and region. Executed copies and a summary (JSON and Markdown) go to the output folder; the
committed notebooks are never written. A failure stops the run (later notebooks build on earlier ones and are
reported `skipped`) unless `keep_going`.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.aws.backend import get_backend
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.home import labkit_home
from labkit.inputs import check_output_folder

LEARNER_NOTEBOOKS = "[0-8][0-9]_*.ipynb"  # 90 and up are the instructor's; name them in `only` to run them
ALL_NOTEBOOKS = "[0-9][0-9]_*.ipynb"
COLUMNS = ["notebook", "status", "seconds", "cells", "failed_cell", "source", "error"]


@dataclass
class NotebookRun:
    notebook: str
    status: str  # passed | failed | skipped
    seconds: float = 0.0
    cells: int = 0
    failed_cell: int | None = None
    source: str = ""
    error: str = ""


@dataclass
class RunSummary:
    """What a headless run did: one row per notebook, where it ran, and where the executed copies are."""

    runs: list[NotebookRun]
    backend: str
    banner: str
    out: Path
    started_at: str
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(run.status == "passed" for run in self.runs)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame([asdict(run) for run in self.runs], columns=COLUMNS)
        return frame.astype({"failed_cell": "Int64"})

    def headline(self) -> str:
        counts = {status: sum(r.status == status for r in self.runs) for status in ("passed", "failed", "skipped")}
        verdict = "all passed" if self.ok else "FAILED"
        return (
            f"{verdict}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
            f"in {self.seconds:.0f} s on {self.banner}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backend": self.backend,
            "where": self.banner,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 1),
            "out": str(self.out),
            "notebooks": [asdict(run) for run in self.runs],
        }

    def __str__(self) -> str:
        return f"{self.headline()}\n{self.to_frame().to_string(index=False)}\nexecuted copies: {self.out}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<p><b>{html.escape(self.headline())}</b></p>{self.to_frame().to_html(index=False)}"

    def write(self) -> None:
        """summary.json and summary.md next to the executed copies."""
        (self.out / "summary.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        table = self.to_frame().to_string(index=False)
        (self.out / "summary.md").write_text(f"# Workbook run\n\n{self.headline()}\n\n```\n{table}\n```\n")
        self.files = {"json": str(self.out / "summary.json"), "markdown": str(self.out / "summary.md")}


def choose_notebooks(folder: str | Path, only: Sequence[str] | None = None) -> list[Path]:
    """The notebooks to run, in order; every name in `only` must exist (given with or without .ipynb)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(
            f"{folder} is not a folder of notebooks", field="notebooks", fix="point it at the workbook's notebooks/"
        )
    if not only:
        chosen = sorted(folder.glob(LEARNER_NOTEBOOKS))
        if not chosen:
            raise ConfigError(f"{folder} holds no NN_name.ipynb notebooks", field="notebooks", fix="check the path")
        return chosen
    available = {p.stem: p for p in folder.glob(ALL_NOTEBOOKS)}
    wanted = [name.removesuffix(".ipynb") for name in only]
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ConfigError(
            f"no notebook named {', '.join(unknown)} in {folder}",
            field="only",
            fix=f"use names from: {', '.join(sorted(available))}",
        )
    return sorted({available[name] for name in wanted})


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the run (kernels inherit them); restore all of them after, whatever the
    backend changed in between."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_notebooks(
    notebooks: str | Path = "notebooks",
    *,
    out: str | Path | None = None,
    backend: str = "sandbox",
    config: LabConfig | None = None,
    only: Sequence[str] | None = None,
    timeout: float = 900.0,
    keep_going: bool = False,
) -> RunSummary:
    """Execute the workbook's notebooks in order against `backend` and return the summary (also written out)."""
    backend = LabConfig(backend=backend).backend  # a typo fails here, naming the field
    if isinstance(timeout, bool) or not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"timeout={timeout!r}", field="timeout", fix="seconds per cell, e.g. 900")
    chosen = choose_notebooks(notebooks, only)
    if out is not None:
        out = check_output_folder(out, field="--out", example="~/workbook-run")
    config = LabConfig.from_mapping({**(config or LabConfig()).to_dict(), "backend": backend}, source="run-notebooks")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(out) if out is not None else labkit_home() / "runs" / stamp
    home = out / "home"  # the run's own LABKIT home: its lab.toml, keys, and (sandbox) its own sandbox
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = {"LABKIT_HOME": str(home), "LABKIT_BACKEND": backend, "PYTHONHASHSEED": "0"}
    with _environment(env):
        config.save()
        with get_backend(backend).private_run() as banner:  # the sandbox: one of the run's own
            runs = _execute_all(chosen, out, timeout, keep_going)
    summary = RunSummary(runs, backend, banner, out, datetime.now(UTC).isoformat(), time.monotonic() - started)
    summary.write()
    return summary


def _execute_all(chosen: list[Path], out: Path, timeout: float, keep_going: bool) -> list[NotebookRun]:
    runs: list[NotebookRun] = []
    failed = False
    for path in chosen:
        if failed and not keep_going:
            runs.append(NotebookRun(path.stem, "skipped", source="an earlier notebook failed"))
            continue
        run = execute(path, out / path.name, timeout)
        failed |= run.status == "failed"
        runs.append(run)
    return runs


def execute(path: Path, copy: Path, timeout: float) -> NotebookRun:
    """Run one notebook in a fresh kernel (cells tagged raises-exception may raise); save the executed copy."""
    import nbformat  # heavy dependency: only a headless run needs nbformat and nbclient (jupyter_client, zmq)
    from nbclient import NotebookClient  # heavy dependency, as above
    from nbclient.exceptions import CellExecutionError  # heavy dependency, as above

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    started = time.monotonic()
    run = NotebookRun(path.stem, "passed", cells=sum(c.cell_type == "code" for c in notebook.cells))
    try:
        client.execute()
    except CellExecutionError as exc:
        run.status, run.error = "failed", f"{exc.ename}: {exc.evalue}".strip()[:300]
        index = _failed_cell(notebook)
        if index is not None:
            run.failed_cell = index
            run.source = (
                notebook.cells[index].source.strip().splitlines()[0][:120] if notebook.cells[index].source else ""
            )
    except Exception as exc:  # a kernel that dies or a cell that times out
        run.status, run.error = "failed", f"{type(exc).__name__}: {exc}".strip()[:300]
    run.seconds = round(time.monotonic() - started, 1)
    copy.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, copy)
    return run


def _failed_cell(notebook: Any) -> int | None:
    """The index of the first code cell with an error output that was not expected to raise."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return index
    return None
