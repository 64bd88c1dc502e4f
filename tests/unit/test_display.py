"""display: plain lines outside a notebook, a widget bar inside one, tables as markdown."""

from __future__ import annotations

import io

import pandas as pd

from labkit import display


def test_outside_a_kernel_progress_is_plain_lines():
    assert not display.in_notebook()
    stream = io.StringIO()
    progress = display.progress_for("apply", 2, stream)
    assert isinstance(progress, display.TerminalProgress)
    progress.started("vpc", "create")
    progress.finished("vpc", "created vpc-1 (0.1 s)")
    progress.failed("cluster", "InjectedFault: no")
    progress.close("stopped")
    assert stream.getvalue().splitlines() == [
        "[0/2] vpc                  create ...",
        "[1/2] vpc                  created vpc-1 (0.1 s)",
        "[2/2] cluster              FAILED: InjectedFault: no",
        "apply: stopped",
    ]


def test_the_widget_bar_counts_and_turns_red_on_failure(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda thing, **kw: shown.append(thing))
    progress = display.WidgetProgress("apply", 3)
    progress.started("vpc", "create")
    progress.finished("vpc", "created")
    progress.failed("cluster", "boom <b>")
    progress.close("stopped")
    bar, log = progress.box.children
    assert (bar.value, bar.max, bar.bar_style) == (2, 3, "danger")
    assert "&lt;b&gt;" in log.value
    assert shown[-1]["text/plain"] == "apply: stopped"


def test_a_saved_progress_output_reads_as_text_not_a_widget_repr(monkeypatch):
    """JupyterLab shows a saved widget output's text/plain when a notebook is opened: it must be readable."""
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda thing, **kw: shown.append(thing))
    progress = display.WidgetProgress("apply", 8)
    progress.close("done: 8 created, 0 completed, 8 in the lab")
    widget, outcome = shown
    assert display.WIDGET_VIEW in widget
    assert "VBox" not in widget["text/plain"] and widget["text/plain"].startswith("apply: a progress bar of 8 steps")
    assert outcome["text/plain"] == "apply: done: 8 created, 0 completed, 8 in the lab"


def test_nothing_to_destroy_is_a_full_green_bar(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda thing, **kw: shown.append(thing))
    progress = display.WidgetProgress("destroy", 0)
    progress.close("0 deleted, 0 failed, 0 resources remain")
    bar, _ = progress.box.children
    assert (bar.value, bar.max, bar.bar_style) == (1, 1, "success")
    assert shown[-1]["text/plain"].startswith("destroy: nothing to do")


def test_markdown_table_escapes_pipes():
    table = display.markdown_table(pd.DataFrame([{"a": "x|y", "b": 1}]))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


def test_show_prints_an_empty_frame_as_none():
    stream = io.StringIO()
    display.show(pd.DataFrame(columns=["what"]), stream)
    assert stream.getvalue() == "(none)\n"
