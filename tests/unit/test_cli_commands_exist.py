"""Every `labkit ...` command a message, the README or a notebook tells the learner to run exists in the CLI.

A hint that names a command the CLI lacks (`labkit apply`; the command is `labkit up`) sends the learner into a
usage error at the moment they need help most.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from labkit.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
# A command as a hint writes it: `labkit x y`, .venv/bin/labkit x y, (labkit x), "..., labkit x)", run labkit x;
# then the command and, when it has one, its subcommand, ending where a command ends (a quote, bracket,
# punctuation, a flag, the end): prose such as "(labkit looks in the backend" is not a command.
QUOTED = re.compile(
    r"(?:`|bin/|\$ |\(|, |then |run |with )labkit ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?"
    r"(?=[`)\];,.'\"]|\s*$|\s+-|\s+[A-Z<`'\"])",
    re.MULTILINE,
)


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _texts() -> dict[str, str]:
    texts = {str(path.relative_to(ROOT)): path.read_text() for path in sorted((ROOT / "labkit").rglob("*.py"))}
    for name in ("README.md", "policies/README.md", "Makefile"):
        if (ROOT / name).exists():
            texts[name] = (ROOT / name).read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        texts[path.name] = "\n".join("".join(cell["source"]) for cell in cells)
    return texts


def quoted_commands() -> list[tuple[str, str, str | None]]:
    found = []
    for where, text in _texts().items():
        for match in QUOTED.finditer(text):
            found.append((where, match.group(1), match.group(2)))
    return found


def unknown_commands() -> list[str]:
    top = _commands(build_parser())
    wrong = []
    for where, command, sub in quoted_commands():
        if command not in top:
            wrong.append(f"{where}: labkit {command}")
            continue
        subcommands = _commands(top[command])
        if subcommands and sub is not None and sub not in subcommands:
            wrong.append(f"{where}: labkit {command} {sub}")
    return sorted(set(wrong))


def test_the_scan_finds_the_commands_the_readme_teaches():
    found = {(command, sub) for _, command, sub in quoted_commands()}
    assert ("sandbox", "up") in found and any(command == "up" for command, _ in found)
    assert len(found) > 10


def test_a_made_up_command_would_be_caught(monkeypatch):
    monkeypatch.setattr(
        "test_cli_commands_exist._texts",
        lambda: {
            "x.py": "run `labkit apply` or `labkit sandbox start`; fix: create one (config readers=1, labkit apply)",
            "y.py": "the id and the region (labkit looks in the backend); the labkit home directory",
        },
    )
    assert unknown_commands() == ["x.py: labkit apply", "x.py: labkit sandbox start"]


@pytest.mark.parametrize("where", ["labkit", "README.md", "notebooks"])
def test_every_quoted_labkit_command_exists(where):
    wrong = [
        line for line in unknown_commands() if line.startswith(where) or (where == "notebooks" and ".ipynb" in line)
    ]
    assert not wrong, "commands the CLI does not have:\n" + "\n".join(wrong)
