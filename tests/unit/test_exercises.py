"""The exercise framework, and the workbook's exercises as the committed notebooks hold them: every notebook from
01 to 06 has two to four, each solution in its notebook is the line the exercise shows as its solution, a check
cell follows it, and a learner's copy has the placeholder instead."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import nbformat
import pytest

import labkit
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError
from labkit.lab.apply import apply
from labkit.workbook.exercises import REGISTRY, NotYet, YourTurn, exercise, exercises, in_order
from labkit.workbook.progress import read_evidence
from labkit.workbook.release import BEGIN, END, learner_copy, release_notebooks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
WORKBOOK = ("01_network", "02_database", "03_compute", "04_sql", "05_benchmark", "06_failover")
BLOCK = re.compile(rf"^{BEGIN} (?P<id>\S+)\n(?P<solution>.*?)\n{END}$", re.S | re.M)
CHECK = re.compile(r'^labkit\.exercise\("(?P<id>[^"]+)", config\)\.check\((?P<args>[^)]*)\)$')


def _solved(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _blocks(notebook: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    return [(index, m["id"], m["solution"]) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for m in BLOCK.finditer(cell.source)]  # fmt: skip


@pytest.mark.parametrize("name", WORKBOOK)
def test_each_notebook_has_two_to_four_exercises_each_solved_and_checked_in_place(name):
    notebook = _solved(name)
    blocks = _blocks(notebook)
    declared = [e.id for e in in_order() if e.notebook == name]
    assert 2 <= len(declared) <= 4 and [b[1] for b in blocks] == declared
    for index, exercise_id, solution in blocks:
        assert solution == REGISTRY[exercise_id].solution, f"{name} cell {index}: the notebook's line is the solution"
        check = CHECK.match(notebook.cells[index + 1].source)
        assert check and check["id"] == exercise_id, f"{name} cell {index + 1} checks {exercise_id}"
        assert [a.strip() for a in check["args"].split(",") if a.strip()] == list(REGISTRY[exercise_id].answers)
        task = "".join(c.source for c in notebook.cells[:index] if c.cell_type == "markdown")
        assert f"(`{exercise_id}`)" in task, f"{exercise_id}: its task is written above it"
        assert all(output.get("output_type") != "error" for output in notebook.cells[index + 1].outputs)


def test_every_declared_exercise_is_in_the_workbook_once():
    found = [exercise_id for name in WORKBOOK for _, exercise_id, _ in _blocks(_solved(name))]
    assert sorted(found) == sorted(REGISTRY) and len(found) == len(set(found))


def test_a_learner_copy_takes_the_solutions_out_and_keeps_the_rest():
    solved = _solved("01_network")
    copy, ids = learner_copy(solved, "01_network")
    assert ids == ["01.db-ingress", "01.app-egress"]
    assert len(copy.cells) == len(solved.cells)
    code = json.dumps([c for c in copy.cells if c.cell_type == "code"])
    assert BEGIN not in code and json.dumps(REGISTRY["01.db-ingress"].solution)[1:-1] not in code
    for before, after in zip(solved.cells, copy.cells, strict=True):
        if BEGIN in before.source:
            assert after.source.startswith('labkit.your_turn("') and "# your turn" in after.source
            assert after.outputs == [] and after.execution_count is None
        elif CHECK.match(before.source):
            assert after.source == before.source and after.outputs == []
        else:
            assert after == before, "every other cell, outputs included, is copied as it is"


def test_release_creates_missing_copies_and_never_overwrites_one(tmp_path, capsys):
    first = release_notebooks(tmp_path, names=["01_network", "02_database.ipynb"])
    assert first.created == ["01_network.ipynb", "02_database.ipynb"] and not first.kept
    assert "created 2 (4 exercises)" in repr(first)
    mine = tmp_path / "01_network.ipynb"
    edited = mine.read_text().replace("labkit.your_turn(", "my_answer = (")
    mine.write_text(edited)
    (tmp_path / "02_database.ipynb").unlink()
    second = release_notebooks(tmp_path, names=["01_network", "02_database"])
    assert second.kept == ["01_network.ipynb"] and second.created == ["02_database.ipynb"]
    assert mine.read_text() == edited, "the learner's work is never overwritten"
    assert "kept 1, yours already (never overwritten" in repr(second)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file is left"


def test_make_lab_opens_the_learner_copies_in_the_home(lab_home, monkeypatch):
    from labkit.workbook import lab

    opened = []
    monkeypatch.setattr(lab, "launch", lambda folder, open_browser: opened.append(Path(folder)) or 0)
    assert lab.main(["--no-browser"]) == 0
    assert opened == [lab_home / "notebooks"]
    copy = nbformat.read(lab_home / "notebooks" / "01_network.ipynb", as_version=4)
    assert 'labkit.your_turn("01.db-ingress")' in "".join(c.source for c in copy.cells)
    assert (lab_home / "notebooks").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (f"{BEGIN} 01.db-ingress\nx = 1", "has no ### END SOLUTION"),
        (f"{END}", "without ### BEGIN SOLUTION"),
        (f"{BEGIN} 99.nothing\nx = 1\n{END}", "no exercise '99.nothing'"),
        (f"{BEGIN} 01.db-ingress\n{BEGIN} 01.app-egress\n{END}", "inside another"),
    ],
)
def test_broken_solution_markers_are_refused_naming_the_cell(source, says):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 0"), nbformat.v4.new_code_cell(source)])
    with pytest.raises(LabkitError) as error:
        learner_copy(notebook, "99_broken")
    assert says in error.value.message and "99_broken cell 1" in error.value.message


def test_the_cli_releases_the_learner_copies(tmp_path, capsys):
    from labkit.cli.main import main

    assert main(["release-notebooks", "--out", str(tmp_path), "--only", "03_compute"]) == 0
    assert "created 1 (2 exercises): 03_compute.ipynb" in capsys.readouterr().out
    assert main(["release-notebooks", "--out", str(tmp_path), "--only", "nothing"]) == 2
    assert "no such notebook" in capsys.readouterr().err


def test_the_hint_ladder_ends_at_the_solution():
    task = labkit.exercise("01.db-ingress")
    assert "hint 1 of 2" in repr(task.hint()) and "source_group" in repr(task.hint())
    assert 'source_group="sg-app"' in repr(task.hint(2)) and ".solution()" in repr(task.hint(2))
    assert task.solution().body == REGISTRY["01.db-ingress"].solution
    assert "```python" in task.solution()._repr_markdown_()
    with pytest.raises(ConfigError) as error:
        task.hint(3)
    assert error.value.field == "level" and ".solution()" in error.value.fix
    with pytest.raises(ConfigError) as error:
        labkit.exercise("01.everything")
    assert "01.db-ingress" in error.value.fix


def test_your_turn_stops_with_the_task_not_a_traceback():
    with pytest.raises(YourTurn) as stop:
        labkit.your_turn("02.backups")
    shown = "\n".join(stop.value.notebook_lines())
    assert "Your turn" in shown and REGISTRY["02.backups"].task in shown
    assert 'labkit.exercise("02.backups").hint()' in shown and "Traceback" not in shown
    assert len(stop.value.notebook_lines()) <= 5


def test_a_check_that_needs_the_learners_value_says_so(strict_backend):
    task = exercise("02.reader-endpoint", LabConfig(), strict_backend)
    assert task.evaluate().problems == ("give the check your reader_endpoint: .check(reader_endpoint)",)
    with pytest.raises(ConfigError) as error:
        task.evaluate("a", "b")
    assert error.value.field == "answers"


def test_a_passed_check_leaves_signed_evidence_and_a_failed_one_none(strict_backend, lab_home):
    config = LabConfig()
    apply(config, strict_backend, stream=io.StringIO(), only="network", leave_exercises=True)
    task = exercise("01.db-ingress", config, strict_backend)
    with pytest.raises(NotYet) as failed:
        task.check()
    assert "no inbound rule for tcp 3306 from sg-app" in "\n".join(failed.value.notebook_lines())
    assert read_evidence() == []
    labkit.authorize_ingress(config, "sg-db", 3306, source_group="sg-app", backend=strict_backend)
    shown = task.check()
    assert repr(shown).startswith("✓ 01.db-ingress passed: sg-db admits tcp 3306 from sg-app by group reference")
    [evidence] = read_evidence()
    assert evidence.valid and evidence.exercise == "01.db-ingress" and evidence.notebook == "01_network"
    assert evidence.resources["rule"].startswith("sgr-") and (evidence.lab, evidence.learner) == (
        "auroralab",
        "learner1",
    )
    table = exercises(config)
    assert table.set_index("exercise")["passed"].to_dict()["01.db-ingress"] is True
    assert not table.set_index("exercise")["passed"]["01.app-egress"]
    assert list(table["exercise"][:3]) == ["01.db-ingress", "01.app-egress", "02.reader-endpoint"]


def test_the_instructors_columns_are_the_workbooks_exercises_in_order():
    from labkit.classroom.progress import workbook_exercises

    assert workbook_exercises() == [e.id for e in in_order()]
    assert [e.notebook for e in in_order()] == sorted(e.notebook for e in in_order())
