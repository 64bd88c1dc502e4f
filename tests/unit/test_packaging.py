"""The two install routes (pip via pyproject, conda via environment.yml) must list the same packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# conda-forge names that differ from PyPI's, and what moto[server] brings on PyPI but conda lists by hand.
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib"}
CONDA_ONLY = {"python", "pip", "flask", "flask-cors"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement.strip(), maxsplit=1)[0].lower()


def pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return {_name(r) for r in requirements}


def conda_packages() -> set[str]:
    names = set()
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.match(r"^\s*-\s+([A-Za-z0-9_.-]+)", line)
        if match and not line.strip().startswith("- conda-forge"):
            names.add(match.group(1).lower())
    return {CONDA_TO_PYPI.get(n, n) for n in names if n not in CONDA_ONLY}


def test_environment_yml_and_pyproject_list_the_same_packages():
    assert conda_packages() == pyproject_packages()


def test_the_parser_sees_real_entries():
    # Guards the test above against passing on two empty sets.
    assert {"boto3", "moto", "pandas", "nbval"} <= conda_packages()


def test_ci_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    assert "make test" in script


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    assert "make lab" in head and "make test" in head
