"""The embedded sandbox backend: a local moto server for the AWS API and real MariaDB for the databases."""

from __future__ import annotations

from labkit.sandbox.control import down, env_exports, reset, status, up, wait_for_databases
from labkit.sandbox.state import SandboxState, read_state
from labkit.sandbox.vpc.dns import endpoint_map, resolve

__all__ = [
    "SandboxState",
    "down",
    "endpoint_map",
    "env_exports",
    "read_state",
    "reset",
    "resolve",
    "status",
    "up",
    "wait_for_databases",
]
