"""Security groups made visible: rules as tables, a security lint, and reachability verdicts that name
the rule that decides.

    security_groups()                     rules of the lab's groups, one row per rule
    style_rules(frame)                    the same, styled for a notebook (risky rows highlighted)
    lint()                                findings with severity and fix; empty for the default lab
    authorize_ingress(config, "sg-db", port, source_group="sg-app")   allow a port in (or out: authorize_egress)
    can_reach("instance", "writer")       a Verdict: reachable?, hops, the deciding rule, the fix
    Reachability.snapshot(backend, config).check(...)   many checks against one description
"""

from __future__ import annotations

import lazy_loader

from labkit.security.changes import authorize_egress, authorize_ingress, revoke_rules
from labkit.security.fixes import ApiCall, Fix
from labkit.security.lint import Finding, LintReport, lint, lint_snapshot
from labkit.security.model import Snapshot
from labkit.security.paths import Endpoint, Hop
from labkit.security.reach import Reachability, Verdict, can_reach
from labkit.security.snapshot import gather

# The rules tables need pandas and the engine does not: their names load on first use, so the sandbox's
# port-forwarder (which checks every connection with the reachability engine) starts without pandas.
__getattr__, _, _ = lazy_loader.attach(__name__, submod_attrs={"tables": ["security_groups", "style_rules"]})

__all__ = [
    "ApiCall",
    "Endpoint",
    "Finding",
    "Fix",
    "Hop",
    "LintReport",
    "Reachability",
    "Snapshot",
    "Verdict",
    "authorize_egress",
    "authorize_ingress",
    "can_reach",
    "gather",
    "lint",
    "lint_snapshot",
    "revoke_rules",
    "security_groups",
    "style_rules",
]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
