"""An ipywidgets form for the lab config: defaults filled in, validated on save, saved for later notebooks.

Every value is checked by LabConfig itself, as it is typed: the form never clamps or corrects a value
(20 readers is refused with its fix, not silently turned into 15), and `save()` raises the same refusal.
A valid value that changes what the later notebooks can show (no reader at all) is saved, with a warning.
"""

from __future__ import annotations

import html
from typing import Any

from labkit.aws.backend import BACKENDS
from labkit.config import LabConfig
from labkit.errors import LabkitError

# Fields a learner edits in 00_setup; the rest keep their defaults (or the saved values).
FORM_FIELDS = ("backend", "region", "learner", "db_instance_class", "readers", "instance_type")
NO_READER = (
    "readers = 0: the cluster gets no replica, and Aurora then sends the reader endpoint to the writer. The "
    "reader lessons have nothing to show: 04's reader cells reach the writer (a write sent to the reader is "
    "refused), and 05's writer-against-reader comparison, replica lag and failover stop with the reason. "
    "Keep 1 (the default) for the whole workbook; 0 costs one DB instance less."
)


def warnings(config: LabConfig) -> list[str]:
    """What a valid config will not let the later notebooks show."""
    return [NO_READER] if config.readers == 0 else []


class ConfigForm:
    """The widgets for a LabConfig. Display it, edit it (or not), then call `save()`."""

    def __init__(self, config: LabConfig | None = None) -> None:
        import ipywidgets as widgets  # heavy dependency, and only a notebook shows the form

        self.base = config or LabConfig.load()
        style = {"description_width": "150px"}
        self.widgets: dict[str, Any] = {
            "backend": widgets.Dropdown(options=list(BACKENDS), value=self.base.backend, description="backend"),
            "region": widgets.Text(value=self.base.region, description="region"),
            "learner": widgets.Text(value=self.base.learner, description="learner"),
            "db_instance_class": widgets.Text(value=self.base.db_instance_class, description="db_instance_class"),
            "readers": widgets.IntText(value=self.base.readers, description="readers"),  # LabConfig checks the range
            "instance_type": widgets.Text(value=self.base.instance_type, description="instance_type"),
        }
        for widget in self.widgets.values():
            widget.style = style
            widget.observe(self._check, names="value")
        self.verdict = widgets.HTML()  # the refusal of the value just typed, with its fix
        self.box = widgets.VBox([*self.widgets.values(), self.verdict])

    def problem(self) -> LabkitError | None:
        """The refusal LabConfig gives the values shown now, or None when they are valid."""
        try:
            self.config()
        except LabkitError as exc:
            return exc
        return None

    def _check(self, change: Any = None) -> None:
        error = self.problem()
        if error is None:
            notes = warnings(self.config())
            self.verdict.value = "".join(f'<span style="color:#8a5a00">{html.escape(n)}</span>' for n in notes)
            return
        fix = f"<br><b>fix</b>: {html.escape(error.fix)}" if error.fix else ""
        field = f"<b>{html.escape(error.field)}</b>: " if error.field else ""
        self.verdict.value = f'<span style="color:#b00020">{field}{html.escape(error.message)}{fix}</span>'

    def values(self) -> dict[str, Any]:
        return {name: widget.value for name, widget in self.widgets.items()}

    def config(self) -> LabConfig:
        """The config as the form shows it now, validated (a ConfigError names any bad field)."""
        return LabConfig.from_mapping({**self.base.to_dict(), **self.values()}, source="the setup form")

    def save(self) -> LabConfig:
        """Validate and save to the LABKIT home, where later notebooks and the CLI find it (saying what a valid
        but limiting value, such as no reader, will not let them show)."""
        from labkit.display import say  # pandas: only a notebook saves the form

        config = self.config()
        config.save()
        for note in warnings(config):
            say(f"warning: {note}")
        return config

    def summary(self) -> str:
        """The form as text: what a saved notebook shows before its cell runs (widgets are not restored)."""
        rows = "\n".join(f"  {name:<18} {value}" for name, value in self.values().items())
        return f"lab config form (run the cell to edit it):\n{rows}"

    def _ipython_display_(self) -> None:
        from labkit.display import display_widget  # pandas: only a notebook displays the form

        display_widget(self.box, self.summary())

    def __repr__(self) -> str:
        return "ConfigForm(" + ", ".join(f"{k}={v!r}" for k, v in self.values().items()) + ")"


def config_form(config: LabConfig | None = None) -> ConfigForm:
    """The setup form, filled with the saved config (or the defaults)."""
    return ConfigForm(config)


__all__ = ["ConfigForm", "config_form", "warnings"]
