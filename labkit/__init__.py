"""labkit: provision, inspect, query, benchmark and clean up an Aurora MySQL + EC2 lab.

The public API lives here; notebooks and the CLI use nothing else. Names are imported on first use, so
a small tool (the sandbox's session plugin, the CLI's --help) does not pay for pandas and the whole API.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it (a module path alone means the name is that module)
_EXPORTS = {
    "ApplyResult": ".apply",
    "StepsFailed": ".apply",
    "apply": ".apply",
    "destroy": ".apply",
    "status": ".apply",
    "verify": ".apply",
    "AwsBackend": ".backend",
    "Backend": ".backend",
    "SandboxBackend": ".backend",
    "get_backend": ".backend",
    "checkpoint": ".checkpoint",
    "environment_report": ".checks",
    "LabConfig": ".config",
    "ConfigError": ".errors",
    "LabkitError": ".errors",
    "SandboxError": ".errors",
    "config_form": ".form",
    "Plan": ".plan",
    "PlanStep": ".plan",
    "plan": ".plan",
    "Reachability": ".security",
    "Verdict": ".security",
    "can_reach": ".security",
    "lint": ".security",
    "revoke_rules": ".security",
    "security_groups": ".security",
    "style_rules": ".security",
    "Tunnel": ".tunnel",
    "tunnel": ".tunnel",
    "diagnose": ".tunnel",
    "readiness": ".tunnel",
    "endpoints": ".endpoints",
    "close_engines": ".sql",
    "credentials": ".sql",
    "engine": ".sql",
    "sql": ".sql",
    "whoami": ".sql",
    "create_schema": ".schema",
    "benchmark": ".bench",
    "replica_lag": ".bench",
    "failover": ".bench",
    "bench": ".bench",
    "sandbox": ".sandbox",
    "WebApp": ".app.client",
    "RunSummary": ".runbook",
    "run_notebooks": ".runbook",
    "CostEstimate": ".cost",
    "ClassStatus": ".classroom",
    "QuotaReport": ".classroom",
    "ResetReport": ".classroom",
    "class_check": ".classroom",
    "class_reset": ".classroom",
    "class_status": ".classroom",
    "plan_cost": ".cost",
    "running_cost": ".cost",
    "web_app": ".app.client",
}

_MODULES = ("sandbox", "bench")  # public names that are modules

__all__ = [
    "ApplyResult",
    "AwsBackend",
    "Backend",
    "ClassStatus",
    "ConfigError",
    "CostEstimate",
    "LabConfig",
    "LabkitError",
    "Plan",
    "PlanStep",
    "QuotaReport",
    "Reachability",
    "ResetReport",
    "RunSummary",
    "SandboxBackend",
    "SandboxError",
    "StepsFailed",
    "Tunnel",
    "Verdict",
    "WebApp",
    "__version__",
    "apply",
    "bench",
    "benchmark",
    "can_reach",
    "checkpoint",
    "class_check",
    "class_reset",
    "class_status",
    "close_engines",
    "config_form",
    "create_schema",
    "credentials",
    "destroy",
    "diagnose",
    "endpoints",
    "engine",
    "environment_report",
    "failover",
    "get_backend",
    "lint",
    "plan",
    "plan_cost",
    "readiness",
    "replica_lag",
    "revoke_rules",
    "run_notebooks",
    "running_cost",
    "sandbox",
    "security_groups",
    "sql",
    "status",
    "style_rules",
    "tunnel",
    "verify",
    "web_app",
    "whoami",
]


def _load(name: str) -> Any:
    module_name = _EXPORTS[name]
    module = importlib.import_module(module_name, __name__)
    return module if name in _MODULES else getattr(module, name)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    value = _load(name)
    globals()[name] = value
    return value


def _function_over_module(name: str) -> property:
    """`labkit.apply` is the function even after the import system records the submodule labkit.apply."""

    def record_submodule(module: types.ModuleType, value: Any) -> None:
        pass  # the submodule stays reachable in sys.modules; the public name keeps meaning the function

    return property(lambda module: _load(name), record_submodule)


class _Api(types.ModuleType):
    apply = _function_over_module("apply")
    checkpoint = _function_over_module("checkpoint")
    endpoints = _function_over_module("endpoints")
    plan = _function_over_module("plan")
    sql = _function_over_module("sql")
    tunnel = _function_over_module("tunnel")


sys.modules[__name__].__class__ = _Api


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from . import bench, sandbox
    from .app.client import WebApp, web_app
    from .apply import ApplyResult, StepsFailed, apply, destroy, status, verify
    from .backend import AwsBackend, Backend, SandboxBackend, get_backend
    from .bench import benchmark, failover, replica_lag
    from .checkpoint import checkpoint
    from .checks import environment_report
    from .classroom import ClassStatus, QuotaReport, ResetReport, class_check, class_reset, class_status
    from .config import LabConfig
    from .cost import CostEstimate, plan_cost, running_cost
    from .endpoints import endpoints
    from .errors import ConfigError, LabkitError, SandboxError
    from .form import config_form
    from .plan import Plan, PlanStep, plan
    from .runbook import RunSummary, run_notebooks
    from .schema import create_schema
    from .security import Reachability, Verdict, can_reach, lint, revoke_rules, security_groups, style_rules
    from .sql import close_engines, credentials, engine, sql, whoami
    from .tunnel import Tunnel, diagnose, readiness, tunnel
