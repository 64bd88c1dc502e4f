"""What a learner sees in the notebooks: the setup form refuses bad values with their fix (no clamping) and
reads as text in a saved notebook."""

from __future__ import annotations

import pytest

from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.workbook.form import ConfigForm


@pytest.fixture
def form(lab_home):
    return ConfigForm(LabConfig(backend="sandbox"))


def test_the_form_refuses_20_readers_instead_of_clamping(form):
    form.widgets["readers"].value = 20
    assert form.widgets["readers"].value == 20  # not silently 15
    assert "readers" in form.verdict.value and "use 0 to 15" in form.verdict.value
    with pytest.raises(ConfigError) as refused:
        form.save()
    assert refused.value.field == "readers"
    form.widgets["readers"].value = 2
    assert form.verdict.value == "" and form.save().readers == 2


def test_no_reader_is_accepted_with_a_warning_at_the_form_and_on_save(form, capsys):
    """Issue 23: readers = 0 was accepted without a word; the reader lessons then showed the writer."""
    form.widgets["readers"].value = 0
    assert form.problem() is None and "readers = 0" in form.verdict.value and "reader endpoint" in form.verdict.value
    assert form.save().readers == 0
    assert capsys.readouterr().out.startswith("warning: readers = 0: the cluster gets no replica")
    form.widgets["readers"].value = 1
    assert form.verdict.value == ""


def test_every_form_value_goes_through_labconfig(form):
    form.widgets["region"].value = "moon-1"
    assert form.problem() is not None and form.problem().field == "region"
    assert "region" in form.verdict.value


def test_a_saved_form_output_reads_as_the_values(form, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda thing, **kw: shown.append(thing))
    form._ipython_display_()
    [bundle] = shown
    assert "VBox" not in bundle["text/plain"]
    assert "readers" in bundle["text/plain"] and "us-east-1" in bundle["text/plain"]


def test_the_config_view_wraps_between_fields_never_inside_one():
    view = LabConfig(backend="sandbox")._repr_html_()
    assert view.count("white-space: nowrap") == len(LabConfig().to_dict())
    assert "engine_version=&#x27;default&#x27;" in view


def test_committed_notebooks_carry_the_installed_kernels_spec_so_opening_one_changes_nothing():
    """Issue 23: every tab showed "modified" on opening: JupyterLab rewrote "Python 3" to the kernel's own
    display name, "Python 3 (ipykernel)" (found in a real browser: that field was the only change)."""
    import json
    from pathlib import Path

    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    wanted = {"display_name": spec.display_name, "language": spec.language, "name": "python3"}
    for notebook in sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb")):
        assert json.loads(notebook.read_text())["metadata"]["kernelspec"] == wanted, notebook.name


def test_committed_outputs_link_to_no_loopback_address():
    """Issue 23: the web app's link in 03 and 04 led nowhere once the notebook was saved (its tunnel closed)."""
    import json
    import re
    from pathlib import Path

    for notebook in sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            for output in cell.get("outputs", []):
                html = "".join(output.get("data", {}).get("text/html", ""))
                assert not re.search(r'<a href="http://127\.0\.0\.1', html), notebook.name
