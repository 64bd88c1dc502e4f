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
    monkeypatch.setattr("IPython.display.display", lambda thing: shown.append(thing))
    progress = display.WidgetProgress("apply", 3)
    progress.started("vpc", "create")
    progress.finished("vpc", "created")
    progress.failed("cluster", "boom <b>")
    progress.close("stopped")
    bar, log = shown[0].children
    assert (bar.value, bar.max, bar.bar_style) == (2, 3, "danger")
    assert "&lt;b&gt;" in log.value and "stopped" in log.value


def test_markdown_table_escapes_pipes():
    table = display.markdown_table(pd.DataFrame([{"a": "x|y", "b": 1}]))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


def test_show_prints_an_empty_frame_as_none():
    stream = io.StringIO()
    display.show(pd.DataFrame(columns=["what"]), stream)
    assert stream.getvalue() == "(none)\n"
