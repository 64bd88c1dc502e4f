"""Re-run every notebook in order against a fresh sandbox and save the outputs (what nbval then checks).

    .venv/bin/python tests/support/refresh_notebooks.py [notebooks/01_network.ipynb ...]

Uses the same setup as tests/notebooks/nbval_setup.py, so committed outputs come from the same kind of run.
Each notebook's kernelspec is then the installed kernel's, as JupyterLab writes it when the kernel starts: a
notebook whose kernelspec differs shows "modified" the moment it is opened. A link to a loopback address in
an output (the web app's, through a tunnel that closed with the run) becomes plain text: in the committed
notebook it would lead nowhere (tests/notebooks/sanitize.cfg compares the two forms as one).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "notebooks"))

import nbval_setup as notebook_setup  # noqa: E402


def installed_kernelspec(name: str = "python3") -> dict[str, str]:
    """The notebook metadata JupyterLab writes for kernel `name`: its display name, language and name."""
    spec = KernelSpecManager().get_kernel_spec(name)
    return {"display_name": spec.display_name, "language": spec.language, "name": name}


LOOPBACK_LINK = re.compile(r'<a href="http://127\.0\.0\.1:\d+/?[^"]*"[^>]*>(.*?)</a>')


def unlink_loopback(notebook: Path) -> bool:
    """Turn each link to a loopback address in the outputs into `<code>` text; True when anything changed."""
    content = nbformat.read(notebook, as_version=4)
    changed = False
    for cell in content.cells:
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html")
            if html is not None and LOOPBACK_LINK.search(html):
                output["data"]["text/html"] = LOOPBACK_LINK.sub(r"<code>\1</code>", html)
                changed = True
    if changed:
        nbformat.write(content, notebook)
    return changed


def match_kernelspec(notebook: Path) -> bool:
    """Write the installed kernel's kernelspec into `notebook`; True when it changed."""
    content = nbformat.read(notebook, as_version=4)
    wanted = installed_kernelspec(content.metadata.get("kernelspec", {}).get("name", "python3"))
    if dict(content.metadata.get("kernelspec", {})) == wanted:
        return False
    content.metadata["kernelspec"] = wanted
    nbformat.write(content, notebook)
    return True


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
            match_kernelspec(notebook)
            unlink_loopback(notebook)
    finally:
        notebook_setup.pytest_sessionfinish(None, 0)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    del pytest
    sys.exit(main(sys.argv[1:]))
