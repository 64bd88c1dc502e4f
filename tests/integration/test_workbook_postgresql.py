"""The whole learner workbook on Aurora PostgreSQL (issue #22, item 6): the same notebooks, run headless with
`labkit run-notebooks --engine aurora-postgresql` in a home and sandbox of their own, against the sandbox's real
PostgreSQL 15 servers, with no error output; then the executed 04_sql opened in Chromium, as a learner on
PostgreSQL sees it.

nbval checks the committed outputs, which are the Aurora MySQL run's; this run checks that every cell works on
the other engine and that the engine's own words (from its description, through labkit.explain) are shown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from test_app_browser import ARTIFACTS, CHROMIUM_FLAGS, chromium_path
from test_notebooks_browser import Lab, opened

ROOT = Path(__file__).resolve().parents[2]
LEARNER_NOTEBOOKS = [p.stem for p in sorted((ROOT / "notebooks").glob("0[0-9]_*.ipynb"))]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, Path]:
    """The workbook run by the CLI, as an instructor rehearses it: its JSON summary and the executed copies."""
    out = tmp_path_factory.mktemp("postgresql-run")
    home = tmp_path_factory.mktemp("postgresql-home")
    labkit = Path(sys.executable).with_name("labkit")
    started = time.monotonic()
    done = subprocess.run(
        [str(labkit), "run-notebooks", "--notebooks", str(ROOT / "notebooks"), "--engine", "aurora-postgresql",
         "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=1800, env={**os.environ, "LABKIT_HOME": str(home)},
    )  # fmt: skip
    summary = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {"raw": done.stdout + done.stderr}
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "workbook-postgresql.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, out


def _cells(out: Path, name: str) -> list:
    return nbformat.read(out / f"{name}.ipynb", as_version=4).cells


def _shown(cell) -> str:
    """What a cell's outputs say, as text (markdown, plain text, streams, errors)."""
    parts = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        parts += [data.get("text/markdown", ""), data.get("text/plain", ""), output.get("text", "")]
        parts += [output.get("evalue", "")]
    return "\n".join(parts)


def test_every_notebook_runs_on_postgresql_with_no_error_output(run):
    summary, out = run
    assert summary.get("ok"), summary
    assert [n["notebook"] for n in summary["notebooks"]] == LEARNER_NOTEBOOKS
    unexpected = []
    for name in LEARNER_NOTEBOOKS:
        for index, cell in enumerate(_cells(out, name)):
            if cell.cell_type != "code":
                continue
            expected = "raises-exception" in cell.metadata.get("tags", [])
            for output in cell.outputs:
                if output.output_type == "error" and not expected:
                    unexpected.append(f"{name} cell {index}: {output.ename}: {output.evalue}")
                if output.output_type == "stream" and output.name == "stderr":
                    unexpected.append(f"{name} cell {index} wrote to stderr: {output.text[:200]}")
    assert not unexpected, unexpected


def test_the_lab_was_aurora_postgresql_and_the_notebooks_said_so(run):
    _, out = run
    database = "\n".join(_shown(c) for c in _cells(out, "02_database"))
    assert "real **PostgreSQL 15** server" in database and "MariaDB" not in database
    sql = "\n".join(_shown(c) for c in _cells(out, "04_sql"))
    assert "aurora_db_instance_identifier()" in sql and "SQLSTATE 25006" in sql and "psql" in sql
    assert "reader is read-only: cannot execute DELETE in a read-only transaction" in sql
    assert "postgresql+psycopg://" in sql and "***" in sql  # labkit.engine's repr: the driver, no password
    benchmark = "\n".join(_shown(c) for c in _cells(out, "05_benchmark"))
    assert "libpq's C API" in benchmark
    network = "\n".join(_shown(c) for c in _cells(out, "01_network"))
    assert "tcp 5432" in network and "3306" not in network  # the exercises' checks name the engine's port


@pytest.fixture(scope="module")
def browser_lab(run, tmp_path_factory):
    """JupyterLab, started as `make lab` starts it, on the run's executed copies (opening them runs nothing)."""
    _, out = run
    folder = tmp_path_factory.mktemp("postgresql-notebooks")
    shutil.copy(out / "04_sql.ipynb", folder / "04_sql.ipynb")
    settings = tmp_path_factory.mktemp("postgresql-lab-settings")
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    started = Lab(folder, tmp_path_factory.mktemp("postgresql-lab-home"), settings)
    yield started
    started.stop()


def test_04_on_postgresql_reads_right_in_chromium(browser_lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        try:
            context = launched.new_context(viewport={"width": 1400, "height": 1000})
            with opened(context, browser_lab, "04_sql.ipynb", "postgresql-04") as page:
                panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
                code = panel.locator(".jp-RenderedMarkdown code", has_text="aurora_db_instance_identifier()")
                assert code.count() >= 1, "the engine's passage is rendered as markdown"
                errors = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                shown = errors.all_inner_texts()
                assert any("read-only transaction" in text for text in shown), shown
                assert all("Traceback" not in text and "fix" in text for text in shown), shown
                assert panel.locator(".jp-OutputArea-output mjx-container").count() == 0
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "notebook-04_sql-postgresql.png"))
        finally:
            launched.close()
