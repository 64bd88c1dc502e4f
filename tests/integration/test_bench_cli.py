"""`labkit bench` on a lab without the shop schema fails loudly, and `labkit schema` is the way out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.sandbox_lab import sandbox_lab

LAB, LEARNER = "clibench", "cy"


@pytest.fixture(scope="module")
def bare_lab(sandbox_home):
    """A whole lab whose database has no tables yet (notebook 04 or `labkit schema` creates them)."""
    return sandbox_lab(LAB, LEARNER)


def labkit(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("labkit")), *args, "--lab", LAB, "--learner", LEARNER]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_bench_without_the_schema_exits_non_zero_with_the_first_error_and_its_fix(bare_lab):
    bench = ("bench", "--target", "writer", "--workload", "point", "--count", "200", "--path", "direct")
    failed = labkit(*bench)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "200 of 200 requests failed" in failed.stderr and "1146" in failed.stderr
    assert "labkit schema" in failed.stderr
    created = labkit("schema")
    assert created.returncode == 0, created.stderr
    assert "products" in created.stdout
    again = labkit(*bench)
    assert again.returncode == 0, again.stderr
    assert labkit("schema").returncode == 0  # idempotent
