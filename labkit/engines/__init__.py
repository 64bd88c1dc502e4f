"""The Aurora engines labkit knows, one description module each, and the one question every layer asks.

    engine_of(config)               the lab's engine (what a layer that holds a config asks)
    engine_for(cluster["Engine"])   the engine of a live cluster or DB instance (a LabkitError if unknown)
    described(name)                 the same, or None for an engine labkit does not describe
    default_port(name)              RDS's port for an engine when an item names none (moto's table of the same name)
    ENGINES, DEFAULT_ENGINE         every description by RDS name; the lab's engine when nothing says otherwise

Adding an engine is one description module here (an `AuroraEngine`, see base.py and aurora_mysql.py), listed
below, plus its server engine in the sandbox (labkit/sandbox/engines): no consumer changes.

The package is standard library only and imports itself relatively, so `make system` can read the system
packages an engine needs with the system Python before the virtualenv exists (labkit/workbook/bootstrap.py
loads it by path, without the labkit package), and `import labkit` stays light. labkit's own modules (the
errors) are imported only inside the functions that raise them.
"""

from __future__ import annotations

from typing import Any

from .aurora_mysql import AURORA_MYSQL
from .base import AuroraEngine
from .dialect import ACCESS_DENIED, DBAPI, LOST_CONNECTION, NO_SCHEMA, OTHER, READ_ONLY, Dialect

ENGINES: dict[str, AuroraEngine] = {engine.name: engine for engine in (AURORA_MYSQL,)}
DEFAULT_ENGINE = AURORA_MYSQL.name  # the lab's engine while LabConfig has no `engine` field

__all__ = [
    "ACCESS_DENIED", "DBAPI", "DEFAULT_ENGINE", "ENGINES", "LOST_CONNECTION", "NO_SCHEMA", "OTHER", "READ_ONLY",
    "AuroraEngine", "Dialect", "default_engine", "default_port", "described", "engine_for", "engine_of",
]  # fmt: skip


def default_engine() -> AuroraEngine:
    """The engine a lab gets when nothing names one (and what examples in help texts quote)."""
    return ENGINES[DEFAULT_ENGINE]


def engine_of(config: Any | None = None) -> AuroraEngine:
    """The lab's engine. The one place that reads it from a config: LabConfig has no `engine` field yet, so
    every lab is the default engine's; when the field comes, only this function changes."""
    return default_engine()


def described(name: str | None) -> AuroraEngine | None:
    """The description of RDS engine `name`, or None when labkit describes no such engine."""
    return ENGINES.get(name) if isinstance(name, str) else None


def default_port(name: str | None) -> int:
    """The port of a cluster or DB instance of engine `name` that names none: its engine's default port (the
    lab's default engine's for an engine labkit does not describe)."""
    return (described(name) or default_engine()).port


def engine_for(name: str | None) -> AuroraEngine:
    """The description of a live cluster's (or DB instance's) `Engine`; a LabkitError naming the engines
    labkit speaks when it has none (the SQL client, the benchmark and the sandbox cannot talk to it)."""
    found = described(name)
    if found is None:
        from labkit.errors import LabkitError  # see the module docstring: labkit's own modules load late

        raise LabkitError(
            f"labkit does not speak the cluster's engine {name!r}",
            field="engine",
            fix=f"create the lab's cluster with one of: {', '.join(sorted(ENGINES))} (labkit up does)",
        )
    return found
