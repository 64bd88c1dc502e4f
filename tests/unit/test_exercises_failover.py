"""06's exercises against comparisons made by hand, on a whole lab in the strict in-process moto: each answer is
read against the learner's own measurement (whatever order it shows), never against a figure written in advance,
and a comparison of another cluster is refused."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from labkit.config import LabConfig
from labkit.failover_lab import FailoverLab
from labkit.lab.apply import apply
from labkit.workbook.exercises import exercise

CONFIG = LabConfig()
WRITER, READER = "auroralab-learner1-db-1", "auroralab-learner1-db-2"


@pytest.fixture
def lab(strict_backend):
    return apply(CONFIG, strict_backend, stream=io.StringIO()).ids


def _said(backend, exercise_id, *answers):
    return "\n".join(exercise(exercise_id, CONFIG, backend).evaluate(*answers).problems)


def _attempt(strategy: str, sent: float, by: str | None, kind: str | None = None) -> dict:
    acked = by is not None
    return {"strategy": strategy, "probe": int(sent * 100), "sent_s": sent, "acked_s": sent + 0.01 if acked else math.nan,
            "done_s": sent + 0.02, "acknowledged": acked, "served_by": by, "error_kind": kind, "error": kind}  # fmt: skip


def _comparison(back: dict[str, float], refused: dict[str, int], writer: str = WRITER) -> FailoverLab:
    """A planned failover and a crash at 1 s: each strategy writes on the old writer at 0.5 s, is refused as
    read-only `refused[strategy]` times, and writes on the new writer `back[strategy]` s after the failure."""
    new = READER if writer == WRITER else "other-db-2"
    samples, runs = [], []
    for failure in ("planned", "crash"):
        for strategy, after in back.items():
            rows = [_attempt(strategy, 0.5, writer)]
            rows += [_attempt(strategy, 1.0 + (n + 1) * 0.01, None, "read-only") for n in range(refused[strategy])]
            rows += [_attempt(strategy, 1.0 + after, new)]
            samples += [{"failure": failure, "run": 1, **row} for row in rows]
        runs.append({"failure": failure, "run": 1, "order": ", ".join(back), "call_s": 1.0, "how": "by hand",
                     "writer_before": writer, "writer_after": new, "acknowledged": 2 * len(back), "lost": []})  # fmt: skip
    reads = pd.DataFrame(columns=["failure", "run", "probe", "seen_s", "reader"])
    return FailoverLab(pd.DataFrame(samples), reads, pd.DataFrame(runs))


def test_first_is_the_smallest_downtime_the_learner_measured(strict_backend, lab, lab_home):
    topology_first = _comparison(
        {"naive": 9.0, "backoff": 5.5, "topology": 1.2}, {"naive": 9, "backoff": 3, "topology": 1}
    )
    assert "topology only 1.70 s" in _said(strict_backend, "06.first", "backoff", topology_first)
    passed = exercise("06.first", CONFIG, strict_backend).check("topology", topology_first)
    assert "topology wrote again first" in repr(passed)
    backoff_first = _comparison(
        {"naive": 9.0, "backoff": 0.8, "topology": 1.2}, {"naive": 9, "backoff": 0, "topology": 1}
    )
    assert _said(strict_backend, "06.first", "backoff", backoff_first) == "", "the measurement decides, not a script"
    assert "topology went" in _said(strict_backend, "06.first", "topology", backoff_first)
    tie = _comparison({"naive": 9.0, "backoff": 1.2, "topology": 1.2}, {"naive": 9, "backoff": 0, "topology": 1})
    assert _said(strict_backend, "06.first", "backoff", tie) == _said(strict_backend, "06.first", "topology", tie) == ""
    assert "write one of 'backoff', 'naive', 'topology'" in _said(strict_backend, "06.first", "fastest", tie)
    assert "pass the result labkit.failover_lab returned" in _said(strict_backend, "06.first", "topology", "table")
    elsewhere = _comparison({"naive": 9.0, "topology": 1.2}, {"naive": 9, "topology": 1}, writer="other-db-1")
    assert "ran on another cluster" in _said(strict_backend, "06.first", "topology", elsewhere)


def test_why_names_the_strategy_refused_most_and_how_it_reached_the_old_writer(strict_backend, lab, lab_home):
    naive_most = _comparison({"naive": 9.0, "pool": 5.0, "topology": 1.2}, {"naive": 12, "pool": 7, "topology": 1})
    assert "naive 12" in _said(strict_backend, "06.why", "pool", "pooled connection", naive_most)
    assert "how pool reaches the old writer, not naive" in _said(
        strict_backend, "06.why", "naive", "pooled connection", naive_most
    )
    assert "write one of 'cached address'" in _said(strict_backend, "06.why", "naive", "DNS", naive_most)
    passed = exercise("06.why", CONFIG, strict_backend).check("naive", "cached address", naive_most)
    assert "naive had 12 writes refused as read-only: its cached address" in repr(passed)
    pool_most = _comparison({"naive": 9.0, "pool": 5.0, "topology": 1.2}, {"naive": 3, "pool": 7, "topology": 1})
    assert _said(strict_backend, "06.why", "pool", "pooled connection", pool_most) == ""
    none = _comparison({"naive": 9.0, "topology": 1.2}, {"naive": 0, "topology": 0})
    assert "no write was refused as read-only" in _said(strict_backend, "06.why", "naive", "cached address", none)
