"""labkit's imports, read with `ast`: no module imports itself back, even through an import inside a function, and
every import inside a function says why it is there.

A late import (one inside a function) is for start-up time (boto3, pandas, moto load only when a command needs
them) or for a process that must stay small; it must never be what hides a cycle. The graph below counts late
imports as edges and the packages an import runs (`import labkit.a.b` runs `labkit/a/__init__.py` too), leaving
out only `if TYPE_CHECKING:` blocks, which never run.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

LABKIT = Path(__file__).resolve().parents[2] / "labkit"
PRAGMAS = ("noqa", "fmt:", "type:", "pragma")  # a comment that only talks to a tool is not a reason

# Imports from a lower top-level package up into a higher one, inside a function, that still close a cycle
# between packages. Each is listed with why; the test fails when one is gone (shrink the list) or a new one appears.
UPWARD_LATE_IMPORTS = {
    # the preflight checks the benchmark's C path is installed, for the lab's engine (bench builds on lab)
    ("labkit.lab.preflight", "labkit.bench.connect"),
    # a learner's view of other labs in their region is the instructor's scan for one region (classroom reads
    # the workbook's evidence)
    ("labkit.workbook.leftovers", "labkit.classroom.scan"),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    named: str  # the labkit module (or package) the statement names
    line: int
    late: bool  # inside a function

    @property
    def runs(self) -> list[str]:
        """What the import runs: the named module and, first, every package above it that the importer is not in."""
        parts = self.named.split(".")
        above = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return [m for m in above if m != self.module and not self.module.startswith(m + ".")]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(LABKIT.rglob("*.py")):
        parts = list(path.relative_to(LABKIT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _known(name: str) -> str | None:
    """The labkit module `name` is, or the innermost package holding it (`from pkg import name` of a function)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, late: bool = False):
    """Every import statement that can run, with whether it is inside a function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (_walk_list(child.orelse, late))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, late
        yield from _walk(child, late or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))


def _walk_list(nodes: list[ast.stmt], late: bool):
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, late
        yield from _walk(node, late or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))


def _named(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The labkit modules an import statement names (a function or class named stands for its module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            origin = ".".join([*base, *([node.module] if node.module else [])])
        else:
            origin = node.module or ""
        names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin for alias in node.names]
    return {known for name in names if name.split(".")[0] == "labkit" and (known := _known(name)) and known != module}


def _imports() -> list[Import]:
    found = []
    for module, path in MODULES.items():
        for node, late in _walk(ast.parse(path.read_text())):
            found += [Import(module, named, node.lineno, late) for named in sorted(_named(module, path, node))]
    return found


IMPORTS = _imports()


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each a set of nodes in a cycle."""
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _explain(cycles: list[list[str]], imports: list[Import], group=lambda name: name) -> str:
    lines = []
    for members in cycles:
        inside = set(members)
        lines.append(" <-> ".join(members))
        lines += [
            f"    {MODULES[i.module].relative_to(LABKIT.parent)}:{i.line} imports {i.named}{' (late)' if i.late else ''}"
            for i in imports
            if group(i.module) in inside and any(group(t) in inside and group(t) != group(i.module) for t in i.runs)
        ]
    return "\n".join(lines)


def _top(name: str) -> str:
    """The top-level package (labkit.aws, labkit.sandbox, ...) or root module (labkit.config) a module is in."""
    return ".".join(name.split(".")[:2])


def test_the_graph_reads_what_it_should():
    """The reader finds late imports, relative imports and the packages an import runs (else the tests below
    could pass on an empty graph)."""
    edges = {(i.module, target, i.late) for i in IMPORTS for target in i.runs}
    assert ("labkit.config", "labkit.aws.backend", True) in edges  # boto3 loads late
    assert ("labkit.engines", "labkit.engines.aurora_mysql", False) in edges  # `from .aurora_mysql import`
    assert ("labkit.lab.preflight", "labkit.lab.resources", False) in edges  # the package of .resources.compute
    assert ("labkit.lab.preflight", "labkit.lab", False) not in edges  # its own package has run already
    assert not any(i.module == "labkit.aws.runcommand" and i.named == "labkit.aws.backend" for i in IMPORTS)


def test_no_module_imports_itself_back_even_through_a_late_import():
    """Module by module, every import that can run counts (inside functions too)."""
    cycles = _cycles({(i.module, target) for i in IMPORTS for target in i.runs})
    assert not cycles, "import cycles:\n" + _explain(cycles, IMPORTS)


def _package_edges(imports: list[Import]) -> set[tuple[str, str]]:
    """Edges between top-level packages; the root package (the lazy public API) is left out."""
    return {
        (_top(i.module), _top(target))
        for i in imports
        for target in i.runs
        if _top(i.module) != _top(target) and "labkit" not in (_top(i.module), _top(target))
    }


def test_no_cycle_between_top_level_packages_at_module_level():
    """labkit.aws, labkit.lab, labkit.sandbox, ...: a module's own imports (outside functions) only go down."""
    module_level = [i for i in IMPORTS if not i.late]
    cycles = _cycles(_package_edges(module_level))
    assert not cycles, "package cycles:\n" + _explain(cycles, module_level, _top)


def test_late_imports_close_no_cycle_between_packages_but_the_listed_ones():
    """Late imports too, except the few listed above with their reason; a listed one that is gone fails too."""
    unlisted = [i for i in IMPORTS if (i.module, i.named) not in UPWARD_LATE_IMPORTS]
    cycles = _cycles(_package_edges(unlisted))
    assert not cycles, "package cycles through late imports:\n" + _explain(cycles, unlisted, _top)
    for listed in UPWARD_LATE_IMPORTS:
        found = [i for i in IMPORTS if (i.module, i.named) == listed]
        assert found and all(i.late for i in found), f"{listed} is no longer a late import: remove it from the list"
        assert _cycles(_package_edges(unlisted + found)), f"{listed} closes no cycle any more: remove it from the list"


# ----- every late import says why -----


def _comments(source: str) -> tuple[set[int], set[int]]:
    """Lines with a comment that gives a reason, and the lines that are only such a comment."""
    commented, alone = set(), set()
    code_lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if text and not text.startswith(PRAGMAS):
                commented.add(token.start[0])
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    alone = commented - code_lines
    return commented, alone


def _unexplained(source: str, where: str) -> list[str]:
    commented, alone = _comments(source)
    late = [node for node, is_late in _walk(ast.parse(source)) if is_late]
    import_lines = {line for node in late for line in range(node.lineno, node.end_lineno + 1)}
    silent = []
    for node in late:
        above = node.lineno - 1
        while above in import_lines:  # a block of late imports shares the reason one of them gives
            above -= 1
        if not (commented & set(range(above + 1, node.end_lineno + 1))) and above not in alone:
            silent.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return silent


def test_every_import_inside_a_function_says_why():
    """A short comment on the import's line, on a late import right above it (one reason for a block), or alone
    on the line above its block:
    start-up time, a process kept small, an optional dependency, the cycle it avoids."""
    silent = [
        line
        for path in MODULES.values()
        for line in _unexplained(path.read_text(), str(path.relative_to(LABKIT.parent)))
    ]
    assert silent == [], "late imports without a reason:\n" + "\n".join(silent)


@pytest.mark.parametrize(
    ("source", "silent"),
    [
        ("def f():\n    import json\n", 1),
        ("def f():\n    import json  # start-up time\n", 0),
        ("def f():\n    # start-up time: both\n    import json\n    import csv\n", 0),
        ("def f():\n    import json  # start-up time: both\n    import csv\n", 0),
        ("def f():\n    import json\n    import csv  # start-up time: the block\n", 1),
        ("def f():\n    import json  # noqa: F401\n", 1),
        ("def f():\n    x = 1  # a comment on code above is no reason\n    import json\n", 1),
        ("if TYPE_CHECKING:\n    import json\nimport csv\n", 0),
    ],
)
def test_the_reason_check_tells_a_reason_from_none(source, silent):
    assert len(_unexplained(source, "probe.py")) == silent


def test_no_package_defines_a_name_that_hides_one_of_its_modules():
    """`labkit.access.tunnel.readiness` was a function defined in the package's `__init__`, hiding the module of
    that name once the package had run: a package's own definitions must not take a submodule's name."""
    hidden = []
    for package, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        submodules = {name.rpartition(".")[2] for name in MODULES if name.rpartition(".")[0] == package}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names = {node.name}
            elif isinstance(node, ast.Assign):
                names = {target.id for target in node.targets if isinstance(target, ast.Name)}
            elif isinstance(node, ast.ImportFrom) and not (node.module or "").startswith(package):
                names = {alias.asname or alias.name for alias in node.names}
            else:
                continue
            hidden += [
                f"{package}.{name} ({path.relative_to(LABKIT.parent)}:{node.lineno})" for name in names & submodules
            ]
    assert hidden == []
