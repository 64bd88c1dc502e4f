"""A fresh lab for a benchmark script: a sandbox in the current LABKIT_HOME, a whole lab, the shop schema."""

from __future__ import annotations

import io
from typing import Any


def fresh_lab(learner: str, engine: str | None = None) -> tuple[Any, Any, Any]:
    """Start the sandbox, apply a lab for `learner` (on `engine`, the default engine's when None), load the schema;
    returns (config, backend, credentials)."""
    from labkit import sandbox
    from labkit.access.schema import create_schema
    from labkit.access.sql import close_engines, credentials
    from labkit.config import LabConfig
    from labkit.lab.apply import apply
    from labkit.sandbox.backend import SandboxBackend

    sandbox.up()
    backend = SandboxBackend()
    config = LabConfig(lab="bench", learner=learner, **({"engine": engine} if engine else {}))
    apply(config, backend, stream=io.StringIO())
    sandbox.wait_for_databases(2)
    create_schema(config=config, backend=backend)
    close_engines()
    return config, backend, credentials(config, backend)
