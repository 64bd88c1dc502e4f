"""What one sandbox tunnel costs: its session plugin stays well under the ~90 MB it took with full boto3 models.

A tunnel runs one plugin process; a learner opens several (writer, reader, the web app). The plugin's lean
backend (labkit/sandbox/vpc/lean.py) keeps it near 55 MB RSS here; the budget below leaves room for other
Python and botocore versions while failing the full-model plugin (about 90 MB). benchmarks/tunnel_cost.py
reports the figures.
"""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest
from support.sandbox_lab import sandbox_lab

from labkit.access.sql import close_engines, credentials
from labkit.access.tunnel import close_all, tunnel

BUDGET_MB = 75


@pytest.fixture(scope="module")
def lab(sandbox_home):
    yield sandbox_lab("costlab", "cora")
    close_engines()
    close_all()


def _rss_mb(pid: int) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_a_tunnel_in_use_stays_within_its_memory_budget(lab):
    config, backend = lab
    secret = credentials(config, backend)
    with tunnel("writer", config=config, backend=backend) as opened:
        db = pymysql.connect(host="127.0.0.1", port=opened.port, user=secret.username, password=secret.password)
        with db, db.cursor() as cursor:  # the rules engine is loaded: the plugin as it is in use
            cursor.execute("SELECT 1")
        guard = opened._process.pid
        (plugin,) = Path(f"/proc/{guard}/task/{guard}/children").read_text().split()
        assert _rss_mb(int(plugin)) < BUDGET_MB
