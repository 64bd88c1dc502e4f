"""Which of an engine's two benchmark paths a run takes: `capi` (the engine's C-speed path), its pure-Python DB-API
driver by name, or `auto` (the C path where it is installed). Each engine's C path module asks here with its own
names (labkit.bench.capi, labkit.bench.libpq)."""

from __future__ import annotations


def choose(driver: str, *, pure: str, available: bool, needs: str, install: str) -> str:
    """The path for `driver`: `auto` is the C path when `available`, `pure` otherwise; `capi` when it is not
    available, or a name neither path has, is refused with the field and the fix."""
    from labkit.errors import ConfigError  # labkit's own modules load late: the C path modules are imported early

    drivers = ("auto", "capi", pure)
    if driver not in drivers:
        raise ConfigError(f"unknown driver {driver!r}", field="driver", fix=f"use one of {', '.join(drivers)}")
    if driver == "auto":
        return "capi" if available else pure
    if driver == "capi" and not available:
        raise ConfigError(
            f"the C path needs {needs}, which is not installed",
            field="driver",
            fix=f"{install}, or use driver='{pure}'",
        )
    return driver
