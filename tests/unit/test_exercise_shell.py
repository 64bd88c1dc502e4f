"""In a real Jupyter kernel: a "your turn" placeholder stops the run with the task, not a traceback; a later cell
that uses an exercise's answer before it exists says which exercise to do; any other NameError keeps IPython's
traceback."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

RAISES = {"tags": ["raises-exception"]}


@pytest.fixture(scope="module")
def executed():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import labkit"),
        nbformat.v4.new_code_cell('labkit.your_turn("01.db-ingress")  # your turn: replace this line', metadata=RAISES),
        nbformat.v4.new_code_cell('print("after")'),
        nbformat.v4.new_code_cell("len(reader_endpoint)", metadata=RAISES),
        nbformat.v4.new_code_cell("len(no_such_name_anywhere)", metadata=RAISES),
    ]
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    return notebook


def _error(cell):
    [error] = [output for output in cell.outputs if output["output_type"] == "error"]
    return error, "\n".join(error["traceback"])


def test_your_turn_is_an_error_output_with_the_task_and_no_traceback(executed):
    error, text = _error(executed.cells[1])
    assert error["ename"] == "YourTurn"
    assert "→ Your turn" in text and "01.db-ingress" in text and "tcp 3306, by group reference" in text
    assert 'labkit.exercise("01.db-ingress").hint()' in text
    assert "Traceback" not in text and "File " not in text and len(error["traceback"]) <= 5


def test_an_exercise_answer_used_before_its_cell_ran_names_the_exercise(executed):
    error, text = _error(executed.cells[3])
    assert error["ename"] == "NameError"
    assert "`reader_endpoint` is not defined yet" in text and "02.reader-endpoint" in text
    assert "Traceback" not in text and "Cell In" not in text


def test_any_other_name_error_keeps_its_traceback(executed):
    error, text = _error(executed.cells[4])
    assert error["ename"] == "NameError" and "no_such_name_anywhere" in text
    assert "Cell In" in text or "Traceback" in text
