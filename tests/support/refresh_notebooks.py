"""Re-run every notebook in order against a fresh sandbox and save the outputs (what nbval then checks).

    .venv/bin/python tests/support/refresh_notebooks.py [notebooks/01_network.ipynb ...]

Uses the same setup as tests/notebooks/nbval_setup.py, so committed outputs come from the same kind of run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "notebooks"))

import nbval_setup as notebook_setup  # noqa: E402


def main(paths: list[str]) -> int:
    notebooks = [Path(p) for p in paths] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    notebook_setup.pytest_sessionstart(None)  # type: ignore[arg-type]
    try:
        for notebook in notebooks:
            print(f"executing {notebook.name}", flush=True)
            subprocess.run(
                [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                 "--ExecutePreprocessor.timeout=300", str(notebook)],
                check=True,
            )  # fmt: skip
    finally:
        notebook_setup.pytest_sessionfinish(None, 0)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    del pytest
    sys.exit(main(sys.argv[1:]))
