"""labkit: provision, inspect, query, benchmark and clean up an Aurora MySQL + EC2 lab.

The public API lives here; notebooks and the CLI use nothing else.
"""

from __future__ import annotations

from . import sandbox
from .backend import AwsBackend, Backend, SandboxBackend, get_backend
from .checks import environment_report
from .errors import ConfigError, LabkitError, SandboxError

__version__ = "0.1.0"

__all__ = [
    "AwsBackend",
    "Backend",
    "ConfigError",
    "LabkitError",
    "SandboxBackend",
    "SandboxError",
    "__version__",
    "environment_report",
    "get_backend",
    "sandbox",
]
