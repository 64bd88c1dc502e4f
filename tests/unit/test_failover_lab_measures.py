"""The failover lab's measures on hand-made samples: what each number means, and a bad option refused."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from labkit.errors import ConfigError
from labkit.failover_lab import FailoverLab, failover_lab
from labkit.failover_lab.report import measure


def _sample(probe: int, sent: float, acked: bool, by: str | None = None, kind: str | None = None) -> dict:
    return {"strategy": "s", "probe": probe, "sent_s": sent, "acked_s": sent + 0.01 if acked else math.nan,
            "done_s": sent + 0.02, "acknowledged": acked, "served_by": by, "error_kind": kind, "error": kind}  # fmt: skip


RUN = {"failure": "planned", "run": 1, "order": "s", "call_s": 1.0, "how": "test", "writer_before": "a",
       "writer_after": "b", "acknowledged": 0, "lost": [3]}  # fmt: skip


def test_a_strategy_that_moved_to_the_new_writer_measures_its_longest_gap():
    samples = pd.DataFrame([_sample(1, 0.5, True, "a"), _sample(2, 1.2, False, kind="read-only"),
                            _sample(3, 2.0, True, "b"), _sample(4, 2.1, True, "b")])  # fmt: skip
    reads = pd.DataFrame([{"probe": 3, "seen_s": 2.5}, {"probe": 1, "seen_s": 0.6}])
    got = measure(samples, RUN, reads, end_s=3.0)
    assert got["write downtime (s)"] == pytest.approx(2.01 - 0.51)
    assert got["recovered"] and got["errors: read-only"] == 1 and got["acknowledged"] == 3
    assert got["acknowledged lost"] == 1  # probe 3 is in the run's lost list
    assert got["first read of new writes (s)"] == pytest.approx(1.5)


def test_a_strategy_stuck_on_the_old_writer_is_down_until_the_end_of_the_run():
    samples = pd.DataFrame([_sample(1, 0.5, True, "a"), *(_sample(n, 1 + n / 10, False, kind="read-only")
                                                           for n in range(2, 9))])  # fmt: skip
    got = measure(samples, RUN, pd.DataFrame(columns=["probe", "seen_s"]), end_s=4.0)
    assert not got["recovered"] and got["write downtime (s)"] == pytest.approx(4.0 - 0.51)
    assert math.isnan(got["first read of new writes (s)"]) and got["errors: read-only"] == 7


def test_the_conclusion_names_what_the_numbers_say():
    rows = [{**_sample(1, 0.5, True, "a"), "strategy": "fast"}, {**_sample(2, 1.1, True, "b"), "strategy": "fast"},
            {**_sample(3, 0.5, True, "a"), "strategy": "stuck"},
            {**_sample(4, 1.1, False, kind="read-only"), "strategy": "stuck"}]  # fmt: skip
    lab = FailoverLab(pd.DataFrame(rows).assign(failure="planned", run=1),
                      pd.DataFrame(columns=["failure", "run", "probe", "seen_s", "reader"]),
                      pd.DataFrame([{**RUN, "lost": []}]))  # fmt: skip
    assert lab.conclusion().splitlines() == [
        "planned: fast wrote again first (0.6 s without an acknowledged write); stuck never did within the run; "
        "most writes refused as read-only: stuck (1).",
        "Acknowledged writes lost: 0, in every run.",
    ]


@pytest.mark.parametrize(("option", "value"), [("strategies", ("best",)), ("failures", ("flood",)),
                                               ("runs", 0), ("after", 1.0), ("interval", 0.0)])  # fmt: skip
def test_bad_options_are_refused_before_any_call(option, value):
    with pytest.raises(ConfigError) as raised:
        failover_lab(**{option: value}, backend=object())  # refused before the backend is asked anything
    assert raised.value.field == option
