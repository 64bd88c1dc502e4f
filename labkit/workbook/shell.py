"""How labkit's results show in IPython and Jupyter: a LabkitError as its message, field and fix, not a
traceback through labkit; tables with their values whole.

A LabkitError is a mistake the learner can fix, and it already says how; the 20 to 60 lines of labkit's source
above it only push the fix below the fold. `install()` (called by `import labkit` inside IPython) registers
a custom exception handler for LabkitError (and for a NameError of a name an exercise asks the learner to define,
which says which exercise to do first; any other NameError keeps its traceback): the cell still fails with an error output (Run All stops,
nbval's `raises-exception` still sees an error), but the output is the short text below, and `%tb` shows the
full traceback. Any other exception keeps IPython's usual traceback.

pandas cuts every cell of a displayed DataFrame at 50 characters ("..."), which is exactly where an endpoint,
a host name or an error message carries the lesson; `install()` also registers display formatters for
DataFrames that show every value whole. They are registered by name, so IPython imports pandas only when a
DataFrame is shown (`import labkit` stays cheap).
"""

from __future__ import annotations

import sys
from typing import Any

from labkit.errors import LabkitError

RED, BOLD, DIM, RESET = "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
TRACEBACK_HINT = "(the full traceback: run %tb in the next cell)"


def short_traceback(error: LabkitError) -> list[str]:
    """The lines an error output shows for a LabkitError: what, which field, and the fix (an exercise's "your
    turn" or "not yet" shows its own short note: it is the learner's next step, not a failure)."""
    notebook_lines = getattr(error, "notebook_lines", None)
    if callable(notebook_lines):
        return list(notebook_lines())
    lines = [f"{RED}{BOLD}{type(error).__name__}{RESET}: {error.message}"]
    if error.field:
        lines.append(f"  {BOLD}field{RESET}: {error.field}")
    if error.fix:
        lines.append(f"  {BOLD}fix{RESET}: {error.fix}")
    lines.append(f"{DIM}{TRACEBACK_HINT}{RESET}")
    return lines


def exercise_answer_missing(error: BaseException) -> list[str] | None:
    """A NameError for a name an exercise's line defines (`reader_endpoint`): which exercise to do first."""
    name = getattr(error, "name", None)
    if not isinstance(error, NameError) or not name:
        return None
    from labkit.workbook.exercises import in_order  # only on a NameError: the exercises' declarations

    for exercise in in_order():
        if name in exercise.defines:
            return [
                f"\x1b[34m{BOLD}→ `{name}` is not defined yet{RESET} · {exercise.id}",
                f"  It is what exercise {exercise.id} asks you to write: {exercise.task}",
                "  Run that exercise's cell first (with your line in it), then this one.",
            ]
    return None


def _show_labkit_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
    """IPython's custom exception handler (see InteractiveShell.set_custom_exc)."""
    shell._get_exc_info((etype, value, tb))  # records sys.last_* so that `%tb` shows the whole traceback
    lines = short_traceback(value) if isinstance(value, LabkitError) else exercise_answer_missing(value)
    if lines is None:  # any other NameError: IPython's usual traceback
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return
    # An error output (ename, evalue, a short traceback): JupyterLab and nbval see a failed cell.
    shell._showtraceback(etype, value, lines)


# The DataFrame class by module and name: pandas 2 names its module pandas.core.frame, newer pandas "pandas".
DATAFRAME_NAMES = (("pandas", "DataFrame"), ("pandas.core.frame", "DataFrame"))


def _whole_html(frame: Any) -> str:
    import pandas as pd  # loaded already: a DataFrame is being shown

    with pd.option_context("display.max_colwidth", None):
        return frame._repr_html_()


def _whole_text(frame: Any, printer: Any, cycle: bool) -> None:
    import pandas as pd  # loaded already: a DataFrame is being shown

    with pd.option_context("display.max_colwidth", None):
        printer.text(repr(frame))


def show_tables_whole(shell: Any) -> None:
    """DataFrames shown in this shell keep every value whole (HTML in a notebook, text in a terminal)."""
    formatters = shell.display_formatter.formatters
    for module, name in DATAFRAME_NAMES:
        formatters["text/html"].for_type_by_name(module, name, _whole_html)
        formatters["text/plain"].for_type_by_name(module, name, _whole_text)


def install(shell: Any | None = None) -> bool:
    """Register the handler on the running IPython shell; False when there is none. Never imports IPython."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        get_ipython = getattr(ipython, "get_ipython", None)
        shell = get_ipython() if get_ipython is not None else None
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    shell.set_custom_exc((LabkitError, NameError), _show_labkit_error)
    if hasattr(shell, "display_formatter"):
        show_tables_whole(shell)
    return True
