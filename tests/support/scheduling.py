"""How pytest-xdist spreads the suite over the cores: each integration module is one unit of work, every other test
goes alone.

An integration module's tests share the module's lab (a module-scoped fixture on the worker's own sandbox) and
some rely on the order they run in, so the whole module runs on one worker, in order, as in a single process.
The unit tests share nothing and are spread one by one, which keeps both cores busy to the end.

pytest-xdist's `--dist loadgroup` would say the same with marks, but it works by renaming test ids, which pytest
9.2 no longer allows (the groups are silently ignored); `--dist loadfile` would also tie each unit test to its
file. Units are handed out largest first (xdist's default order), so the long modules start early.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

GROUPED = Path(__file__).resolve().parents[1] / "integration"  # tests/integration/


class ModulesTogether(LoadScopeScheduling):
    """LoadScopeScheduling whose scope is the module for the files under `grouped`, the test itself elsewhere."""

    def __init__(self, config: pytest.Config, log: Any = None, grouped: Path = GROUPED) -> None:
        super().__init__(config, log)
        prefix = grouped.relative_to(config.rootpath).as_posix()
        self._grouped = prefix.rstrip("/") + "/"

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module.startswith(self._grouped) else nodeid


def make_scheduler(config: pytest.Config, log: Any) -> ModulesTogether | None:
    """The scheduler for `-n N` with the default distribution (`load`, or `loadgroup`); None for another `--dist`
    a developer asked for (xdist's own then)."""
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None
    return ModulesTogether(config, log)
