"""The security engine (snapshot, reachability, lint, fixes, changes) runs without pandas, so the sandbox's
port-forwarder and the tunnel's readiness checks start light; only the tables load it, on first use."""

from __future__ import annotations

import subprocess
import sys

ENGINE = (
    "labkit.security.reach",
    "labkit.security.model",
    "labkit.security.paths",
    "labkit.security.routes",
    "labkit.security.lint",
    "labkit.security.snapshot",
    "labkit.security.fixes",
    "labkit.security.changes",
    "labkit.access.tunnel.readiness",
)


def _loaded(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_importing_the_reachability_engine_does_not_load_pandas():
    assert _loaded("import sys, labkit.security.reach; print('pandas' in sys.modules)") == "False"


def test_no_module_of_the_engine_loads_pandas():
    imports = "; ".join(f"import {name}" for name in ENGINE)
    assert _loaded(f"import sys; {imports}; print('pandas' in sys.modules)") == "False"


def test_the_tables_load_pandas_when_asked_for_and_lint_stays_the_function():
    probe = (
        "import sys, labkit.security as s; before = 'pandas' in sys.modules; "
        "from labkit.security import lint, security_groups, style_rules; "
        "print(before, 'pandas' in sys.modules, callable(lint) and lint.__module__, security_groups.__module__)"
    )
    assert _loaded(probe) == "False True labkit.security.lint labkit.security.tables"


def test_the_tunnel_and_the_security_engine_depend_one_way():
    import ast
    from pathlib import Path

    security = Path(__file__).resolve().parents[2] / "labkit" / "security"
    for path in security.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("labkit.access"), f"{path.name} imports {node.module}"
