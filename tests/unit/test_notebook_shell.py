"""In a real Jupyter kernel, a LabkitError shows as its message, field and fix (an error output of a few lines),
`%tb` shows the whole traceback, and any other exception keeps its traceback; nbval still sees the error.
Tables show their values whole (pandas would cut them at 50 characters)."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from labkit.errors import ConfigError
from labkit.workbook.shell import TRACEBACK_HINT, short_traceback

RAISES = {"tags": ["raises-exception"]}


def _notebook(*cells: tuple[str, dict]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source, metadata=metadata) for source, metadata in cells]
    return notebook


def _errors(cell: nbformat.NotebookNode) -> list[dict]:
    return [output for output in cell.outputs if output["output_type"] == "error"]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    notebook = _notebook(
        ("import labkit", {}),
        ("labkit.LabConfig(readers=20)", RAISES),
        ("%tb", {}),
        ("1 / 0", RAISES),
        (
            "import pandas as pd\npd.DataFrame([{'host': 'auroralab-learner1-cluster.cluster-ro-abc123.' + 'x' * 60}])",
            {},
        ),
    )
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    return notebook


def test_a_labkit_error_is_an_error_output_of_a_few_lines(executed):
    [error] = _errors(executed.cells[1])
    assert error["ename"] == "ConfigError"
    text = "\n".join(error["traceback"])
    assert len(error["traceback"]) <= 5, text
    assert "readers" in text and "use 0 to 15" in text and TRACEBACK_HINT in text
    assert "config.py" not in text and "File " not in text  # no walk through labkit's source


def test_percent_tb_shows_the_whole_traceback(executed):
    shown = "".join(output.get("text", "") for output in executed.cells[2].outputs)
    shown += "\n".join("\n".join(output.get("traceback", [])) for output in executed.cells[2].outputs)
    assert "config.py" in shown and "ConfigError" in shown


def test_other_errors_keep_their_traceback(executed):
    [error] = _errors(executed.cells[3])
    assert error["ename"] == "ZeroDivisionError"
    assert len(error["traceback"]) >= 2 and "Traceback" in "\n".join(error["traceback"])


def test_tables_show_their_values_whole(executed):
    [result] = executed.cells[4].outputs
    whole = "auroralab-learner1-cluster.cluster-ro-abc123." + "x" * 60
    assert whole in result["data"]["text/html"] and whole in result["data"]["text/plain"]


def test_import_labkit_does_not_load_pandas_or_ipython():
    code = "import sys, labkit; print('pandas' in sys.modules, 'IPython' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]


def test_the_short_traceback_names_field_and_fix():
    lines = short_traceback(ConfigError("20 readers is out of range", field="readers", fix="use 0 to 15"))
    assert "field" in lines[1] and "readers" in lines[1] and "use 0 to 15" in lines[2]


def test_nbval_still_counts_it_as_an_error(tmp_path):
    """A cell tagged raises-exception passes under nbval; an untagged one that raises a LabkitError fails."""
    expected = _notebook(("import labkit", {}), ("raise labkit.ConfigError('bad', field='x', fix='y')", RAISES))
    unexpected = _notebook(("import labkit", {}), ("raise labkit.ConfigError('bad', field='x', fix='y')", {}))
    for name, notebook in (("expected", expected), ("unexpected", unexpected)):
        NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True).execute()
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")

    def nbval(name: str) -> int:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--nbval",
                   "--nbval-current-env", str(tmp_path / f"{name}.ipynb"), "--rootdir", str(tmp_path)]  # fmt: skip
        return subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=300).returncode

    assert nbval("expected") == 0
    assert nbval("unexpected") != 0
