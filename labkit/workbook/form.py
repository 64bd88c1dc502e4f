"""An ipywidgets form for the lab config: defaults filled in, validated on save, saved for later notebooks."""

from __future__ import annotations

from typing import Any

from labkit.aws.backend import BACKENDS
from labkit.config import LabConfig

# Fields a learner edits in 00_setup; the rest keep their defaults (or the saved values).
FORM_FIELDS = ("backend", "region", "learner", "db_instance_class", "readers", "instance_type")


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
            "readers": widgets.BoundedIntText(value=self.base.readers, min=0, max=15, description="readers"),
            "instance_type": widgets.Text(value=self.base.instance_type, description="instance_type"),
        }
        for widget in self.widgets.values():
            widget.style = style
        self.box = widgets.VBox(list(self.widgets.values()))

    def values(self) -> dict[str, Any]:
        return {name: widget.value for name, widget in self.widgets.items()}

    def config(self) -> LabConfig:
        """The config as the form shows it now, validated (a ConfigError names any bad field)."""
        return LabConfig.from_mapping({**self.base.to_dict(), **self.values()}, source="the setup form")

    def save(self) -> LabConfig:
        """Validate and save to the LABKIT home, where later notebooks and the CLI find it."""
        config = self.config()
        config.save()
        return config

    def _ipython_display_(self) -> None:
        from IPython.display import display  # heavy dependency, and only a notebook displays it

        display(self.box)

    def __repr__(self) -> str:
        return "ConfigForm(" + ", ".join(f"{k}={v!r}" for k, v in self.values().items()) + ")"


def config_form(config: LabConfig | None = None) -> ConfigForm:
    """The setup form, filled with the saved config (or the defaults)."""
    return ConfigForm(config)


__all__ = ["ConfigForm", "config_form"]
