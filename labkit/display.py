"""How labkit shows things: a widget progress bar inside a Jupyter kernel, plain lines in a terminal; tables.

The choice between notebook and terminal is made here and nowhere else.
"""

from __future__ import annotations

import html
import sys
import threading
from typing import Any, TextIO

import pandas as pd


def in_notebook() -> bool:
    """True when running inside a Jupyter (ipykernel) kernel."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython  # loaded already in a kernel; a terminal never pays for IPython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def say(message: str, stream: TextIO | None = None) -> None:
    """One line for the learner (stdout in a notebook or terminal, or the given stream)."""
    print(message, file=stream or sys.stdout, flush=True)


def show(thing: Any, stream: TextIO | None = None) -> None:
    """Display a table or plan: rich output in a notebook, text in a terminal."""
    if in_notebook() and stream is None:
        from IPython.display import display  # only inside a kernel (see in_notebook)

        display(thing)
    elif isinstance(thing, pd.DataFrame):
        say(thing.to_string(index=False) if not thing.empty else "(none)", stream)
    else:
        say(str(thing), stream)


def literal_html(body: str) -> str:
    """HTML that JupyterLab's MathJax leaves alone: it typesets `$...$` in HTML and Markdown outputs, so
    "$0.16 per hour, $3.91 per day" would turn into italic math. A `mathjax_ignore` container keeps every
    dollar sign literal (`&#36;` does not: MathJax reads the decoded text)."""
    return f'<div class="mathjax_ignore">{body}</div>'


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-style markdown table (no extra dependency)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


class Progress:
    """Per-resource progress of apply or destroy. Methods are called from one thread only."""

    def __init__(self, title: str, total: int) -> None:
        self.title = title
        self.total = total
        self.done = 0

    def started(self, node: str, action: str) -> None:
        """A node's step began (`action` is e.g. 'create' or 'delete')."""

    def finished(self, node: str, outcome: str) -> None:
        """A node's step ended well; `outcome` says what happened."""
        self.done += 1

    def failed(self, node: str, message: str) -> None:
        """A node's step failed."""
        self.done += 1

    def close(self, summary: str) -> None:
        """All steps are over."""


class QuietProgress(Progress):
    """Shows nothing (for library use inside other tools)."""


class TerminalProgress(Progress):
    """Plain lines, one when a step starts and one when it ends."""

    def __init__(self, title: str, total: int, stream: TextIO | None = None) -> None:
        super().__init__(title, total)
        self.stream = stream
        self._width = len(str(total))

    def _line(self, node: str, text: str) -> None:
        say(f"[{self.done:>{self._width}}/{self.total}] {node:<20} {text}", self.stream)

    def started(self, node: str, action: str) -> None:
        self._line(node, f"{action} ...")

    def finished(self, node: str, outcome: str) -> None:
        super().finished(node, outcome)
        self._line(node, outcome)

    def failed(self, node: str, message: str) -> None:
        super().failed(node, message)
        self._line(node, f"FAILED: {message}")

    def close(self, summary: str) -> None:
        say(f"{self.title}: {summary}", self.stream)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def display_widget(widget: Any, text: str) -> None:
    """Display a widget whose saved output reads as `text`, not as `VBox(children=(IntProgress(...`.

    JupyterLab does not restore widget state when a notebook is opened, so a saved widget output shows its
    text/plain; that text is the only thing a learner sees before running the cell."""
    from IPython.display import display  # only inside a kernel (see progress_for)

    bundle = dict(widget._repr_mimebundle_() or {})
    bundle["text/plain"] = text
    display(bundle, raw=True)


def display_text(text: str, html_text: str | None = None) -> None:
    """Display one short result line in a notebook (HTML, with the same text for a saved notebook's plain view)."""
    from IPython.display import display  # only inside a kernel (see progress_for)

    display({"text/plain": text, "text/html": html_text or html.escape(text)}, raw=True)


class WidgetProgress(Progress):
    """An ipywidgets bar and a short log of each resource, updated in place in the notebook; the outcome as a
    line of its own below, readable in a saved notebook too."""

    def __init__(self, title: str, total: int) -> None:
        import ipywidgets as widgets  # heavy dependency: a terminal run never builds the widget

        super().__init__(title, total)
        self._bar = widgets.IntProgress(value=0, min=0, max=max(total, 1), description=title, bar_style="info")
        self._log = widgets.HTML()
        self._lines: dict[str, str] = {}
        self._lock = threading.Lock()
        self.box = widgets.VBox([self._bar, self._log])
        steps = "nothing to do" if total == 0 else f"{total} steps"
        display_widget(self.box, f"{title}: a progress bar of {steps} (its outcome is on the next line)")

    def _render(self, node: str, text: str) -> None:
        with self._lock:
            self._lines[node] = f"<code>{html.escape(node)}</code> {html.escape(text)}"
            self._bar.value = self.done
            self._log.value = "<br>".join(self._lines.values())

    def started(self, node: str, action: str) -> None:
        self._render(node, f"{action} ...")

    def finished(self, node: str, outcome: str) -> None:
        super().finished(node, outcome)
        self._render(node, f"✓ {outcome}")

    def failed(self, node: str, message: str) -> None:
        super().failed(node, message)
        self._bar.bar_style = "danger"
        self._render(node, f"✗ {message}")

    def close(self, summary: str) -> None:
        if self._bar.bar_style != "danger":
            self._bar.bar_style = "success"
        if self.total == 0:  # nothing to do is a finished job, not an empty grey bar
            self._bar.value = self._bar.max
            summary = f"nothing to do ({summary})"
        self._bar.description = self.title
        display_text(f"{self.title}: {summary}", f"<b>{html.escape(self.title)}</b>: {html.escape(summary)}")


def progress_for(title: str, total: int, stream: TextIO | None = None) -> Progress:
    """A widget bar inside a notebook, plain lines elsewhere (or on `stream` when one is given)."""
    if stream is None and in_notebook():
        return WidgetProgress(title, total)
    return TerminalProgress(title, total, stream)
