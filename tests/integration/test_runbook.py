"""`labkit run-notebooks`: real kernels executing notebooks in order, in a LABKIT home and sandbox of the run's
own; failures located by cell, later notebooks skipped (or run with keep_going), copies and summary written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit.errors import ConfigError
from labkit.workbook.runner import choose_notebooks, run_notebooks

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, *cells: str, raises: tuple[int, ...] = ()) -> Path:
    notebook = nbformat.v4.new_notebook()
    for index, source in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        if index in raises:
            cell.metadata["tags"] = ["raises-exception"]
        notebook.cells.append(cell)
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write(folder, "00_first", "import os\nhome = os.environ['LABKIT_HOME']", "print(home)")
    write(
        folder, "01_sandbox",
        "import os, labkit\nassert os.environ['AWS_ENDPOINT_URL'].startswith('http://127.0.0.1:')",
        "labkit.LabConfig.load().backend",
        "1 / 0", raises=(2,),
    )  # fmt: skip
    write(folder, "02_breaks", "x = 1", "raise ValueError('the lab is not there')", "y = 2")
    write(folder, "03_after", "z = 3")
    write(folder, "90_instructor", "w = 4")
    return folder


@pytest.mark.integration
def test_a_run_stops_at_the_first_failure_and_says_where(workbook: Path, tmp_path: Path, lab_home: Path):
    out = tmp_path / "run"
    summary = run_notebooks(workbook, out=out)
    frame = summary.to_frame().set_index("notebook")
    assert list(frame.index) == ["00_first", "01_sandbox", "02_breaks", "03_after"], "90_ is the instructor's"
    assert list(frame["status"]) == ["passed", "passed", "failed", "skipped"]
    assert frame.loc["02_breaks", "failed_cell"] == 1
    assert frame.loc["02_breaks", "source"] == "raise ValueError('the lab is not there')"
    assert frame.loc["02_breaks", "error"] == "ValueError: the lab is not there"
    assert not summary.ok and "FAILED" in summary.headline()

    first = nbformat.read(out / "00_first.ipynb", as_version=4)
    assert first.cells[1].outputs[0]["text"].strip() == str(out / "home"), "kernels use the run's own home"
    sandbox_nb = nbformat.read(out / "01_sandbox.ipynb", as_version=4)
    assert sandbox_nb.cells[1].outputs[0]["data"]["text/plain"] == "'sandbox'"
    assert not (out / "03_after.ipynb").exists()
    assert nbformat.read(workbook / "00_first.ipynb", as_version=4).cells[1].outputs == [], "originals untouched"

    written = json.loads((out / "summary.json").read_text())
    assert written["ok"] is False and [n["status"] for n in written["notebooks"]][-1] == "skipped"
    assert "02_breaks" in (out / "summary.md").read_text()
    from labkit.sandbox.state import read_state

    assert read_state(out / "home") is None, "the run's sandbox is stopped at the end"


@pytest.mark.integration
def test_keep_going_and_only(workbook: Path, tmp_path: Path, lab_home: Path):
    summary = run_notebooks(workbook, out=tmp_path / "a", keep_going=True, only=["02_breaks", "03_after.ipynb"])
    assert [(r.notebook, r.status) for r in summary.runs] == [("02_breaks", "failed"), ("03_after", "passed")]
    only_instructor = run_notebooks(workbook, out=tmp_path / "b", only=["90_instructor"])
    assert only_instructor.ok and [r.notebook for r in only_instructor.runs] == ["90_instructor"]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"backend": "awz"}, "backend"),
        ({"only": ["07_nothing"]}, "only"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(workbook: Path, tmp_path: Path, kwargs, field):
    with pytest.raises(ConfigError) as refused:
        run_notebooks(workbook, out=tmp_path / "never", **kwargs)
    assert refused.value.field == field
    assert not (tmp_path / "never").exists()


def test_a_missing_folder_is_named(tmp_path: Path):
    with pytest.raises(ConfigError) as refused:
        choose_notebooks(tmp_path / "nope")
    assert refused.value.field == "notebooks"


def test_the_workbook_itself_is_found_in_order():
    names = [p.stem for p in choose_notebooks(ROOT / "notebooks")]
    assert names == sorted(names) and names[0] == "00_setup" and names[-1] == "07_cleanup"


@pytest.mark.integration
def test_the_cli_runs_a_real_notebook_and_exits_by_the_result(tmp_path: Path, lab_home: Path):
    labkit = Path(sys.executable).with_name("labkit")
    done = subprocess.run(
        [str(labkit), "run-notebooks", "--notebooks", str(ROOT / "notebooks"), "--only", "00_setup",
         "--engine", "aurora-postgresql", "--out", str(tmp_path / "real"), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] and summary["notebooks"][0]["notebook"] == "00_setup"
    assert summary["where"].startswith("backend=sandbox")
    copy = nbformat.read(tmp_path / "real" / "00_setup.ipynb", as_version=4)
    assert any(cell.get("outputs") for cell in copy.cells if cell.cell_type == "code")
    assert 'engine = "aurora-postgresql"' in (tmp_path / "real" / "home" / "lab.toml").read_text()
    shown = json.dumps([cell.get("outputs") for cell in copy.cells if cell.cell_type == "code"])
    assert "engine='aurora-postgresql'" in shown, "the notebook's kernel read the run's engine"
    refused = subprocess.run(
        [str(labkit), "run-notebooks", "--notebooks", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "notebooks" in refused.stderr
