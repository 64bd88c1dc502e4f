"""A headless workbook run asks the backend to ready itself in the run's own home (the sandbox starts one of its
own there); the runner never asks which backend it has."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from labkit.aws.backend import Backend
from labkit.workbook import runner
from labkit.workbook.runner import NotebookRun, run_notebooks


class RecordingBackend:
    def __init__(self) -> None:
        self.home_seen: str | None = None
        self.closed = False

    @contextlib.contextmanager
    def private_run(self) -> Iterator[str]:
        self.home_seen = os.environ.get("LABKIT_HOME")
        os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1"  # the backend may set what its kernels need
        try:
            yield "backend=recording (its own)"
        finally:
            self.closed = True


def test_the_run_happens_inside_the_backends_private_run(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "00_first.ipynb").write_text("{}")
    backend = RecordingBackend()
    chosen: list[str] = []
    monkeypatch.setattr(runner, "get_backend", lambda name: chosen.append(name) or backend)

    def execute(path: Path, copy: Path, timeout: float) -> NotebookRun:
        assert backend.home_seen and not backend.closed and os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
        return NotebookRun(path.stem, "passed", cells=1)

    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    summary = run_notebooks(notebooks, out=tmp_path / "out")
    assert chosen == ["sandbox"] and backend.closed and summary.ok
    assert backend.home_seen == str(tmp_path / "out" / "home")
    assert summary.banner == "backend=recording (its own)" and summary.backend == "sandbox"
    assert "AWS_ENDPOINT_URL" not in os.environ  # the run's environment is undone


def test_aws_needs_nothing_started_and_names_the_account_first():
    class Named(Backend):
        name = "named"
        session = endpoint_url = resolve = session_plugin = None  # type: ignore[assignment]

        def banner(self) -> str:
            return "backend=named account=1 region=r"

    with Named().private_run() as banner:
        assert banner == "backend=named account=1 region=r"
