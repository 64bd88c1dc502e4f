"""labkit: provision, inspect, query, benchmark and clean up an Aurora MySQL + EC2 lab.

The public API lives here; notebooks and the CLI use nothing else.
"""

from __future__ import annotations

from . import sandbox
from .apply import ApplyResult, StepsFailed, apply, destroy, status, verify
from .backend import AwsBackend, Backend, SandboxBackend, get_backend
from .checkpoint import checkpoint
from .checks import environment_report
from .config import LabConfig
from .errors import ConfigError, LabkitError, SandboxError
from .form import config_form
from .plan import Plan, PlanStep, plan
from .security import Reachability, Verdict, can_reach, lint, revoke_rules, security_groups, style_rules

__version__ = "0.1.0"

__all__ = [
    "ApplyResult",
    "AwsBackend",
    "Backend",
    "ConfigError",
    "LabConfig",
    "LabkitError",
    "Plan",
    "PlanStep",
    "Reachability",
    "SandboxBackend",
    "SandboxError",
    "StepsFailed",
    "Verdict",
    "__version__",
    "apply",
    "can_reach",
    "checkpoint",
    "config_form",
    "destroy",
    "environment_report",
    "get_backend",
    "lint",
    "plan",
    "revoke_rules",
    "sandbox",
    "security_groups",
    "status",
    "style_rules",
    "verify",
]
