"""The benchmark's statistics and load loop, without a database: known distributions, injected stalls, errors."""

from __future__ import annotations

import gc
import math
import time

import numpy as np
import pandas as pd
import pytest

from labkit.bench import bootstrap_median_difference, percentile, summarize
from labkit.bench.harness import Schedule, run
from labkit.bench.runner import benchmark, to_frame
from labkit.errors import ConfigError


class Exploding:
    def __getattr__(self, name: str):
        raise AssertionError(f"touched {name} before validating the input")


def test_percentiles_of_a_known_uniform_sample_are_exact():
    values = np.arange(1, 1001)
    assert [percentile(values, q) for q in (50, 90, 99, 99.9, 100)] == [500, 900, 990, 999, 1000]
    assert percentile(np.random.default_rng(3).permutation(values), 99) == 990  # order does not matter
    assert math.isnan(percentile([], 50))


def test_percentiles_of_an_exponential_sample_match_theory():
    scale = 200.0
    values = np.random.default_rng(7).exponential(scale, 200_000)
    for q in (50, 90, 99):
        expected = -scale * math.log(1 - q / 100)
        assert percentile(values, q) == pytest.approx(expected, rel=0.03)


def test_bootstrap_interval_finds_a_real_shift_and_not_a_false_one():
    rng = np.random.default_rng(11)
    slower, faster = rng.normal(310, 20, 4000), rng.normal(300, 20, 4000)
    estimate, low, high = bootstrap_median_difference(slower, faster, resamples=500)
    assert low < 10 < high and low > 0 and estimate == pytest.approx(10, abs=3)
    same_a, same_b = rng.normal(300, 20, 4000), rng.normal(300, 20, 4000)
    _, low, high = bootstrap_median_difference(same_a, same_b, resamples=500)
    assert low < 0 < high


def _frame(operation, schedule: Schedule) -> pd.DataFrame:
    rows, start = run(lambda worker: operation, schedule)
    return to_frame(rows, start, target="t", path="p", workload="w")


def test_a_count_is_split_over_workers_and_warmup_is_marked_not_measured():
    frame = _frame(lambda: None, Schedule(concurrency=3, count=10, warmup=5))
    measured = frame[~frame["warmup"]]
    assert sorted(measured.groupby("worker").size()) == [3, 3, 4]
    assert len(frame[frame["warmup"]]) == 15
    assert summarize(frame)["count"].tolist() == [10]


def test_errors_are_counted_not_dropped_and_kept_out_of_latency():
    calls = {"n": 0}

    def sometimes_fails() -> None:
        calls["n"] += 1
        if calls["n"] % 10 == 0:
            raise RuntimeError("server has gone away")
        time.sleep(0.0005)

    frame = _frame(sometimes_fails, Schedule(count=100, warmup=0))
    summary = summarize(frame).iloc[0]
    assert summary["count"] == 100 and summary["errors"] == 10
    assert frame["error"].dropna().str.contains("server has gone away").all()
    assert summary["max_us"] < 50_000  # failed requests' times are not mixed into the latencies


def _stalling(stall_at: int, stall: float, normal: float = 0.001):
    calls = {"n": 0}

    def operation() -> None:
        calls["n"] += 1
        time.sleep(stall if calls["n"] == stall_at else normal)

    return operation


def test_fixed_rate_measures_from_the_intended_time_so_a_stall_shows_in_every_request_it_delayed():
    schedule = Schedule(rate=200, count=150, warmup=0)  # one request every 5 ms
    fixed = _frame(_stalling(50, 0.2), schedule)
    closed = _frame(_stalling(50, 0.2), Schedule(count=150, warmup=0))
    intervals = np.diff(fixed.sort_values("seq")["intended_s"].to_numpy())
    assert np.allclose(intervals, 0.005, atol=1e-6)  # the schedule, not the responses, sets the send times
    delayed_fixed = int((fixed["latency_us"] > 50_000).sum())
    assert (
        int((closed["latency_us"] > 150_000).sum()) == 1
    )  # a closed loop sees one slow request (coordinated omission)
    assert int((fixed["latency_us"] > 150_000).sum()) >= 8  # the open loop sees the queue the stall built
    assert delayed_fixed >= 25  # ... about 37 requests intended during the 200 ms stall wait more than 50 ms
    late = fixed[fixed["latency_us"] > 50_000]
    assert (late["start_s"] > late["intended_s"]).all()  # they were sent late, and that counts
    assert (fixed["service_us"] <= fixed["latency_us"] + 1e-6).all()


def test_a_timed_run_stops_after_its_duration():
    started = time.monotonic()
    frame = _frame(lambda: time.sleep(0.001), Schedule(concurrency=2, duration=0.3, warmup=2))
    assert 0.25 < time.monotonic() - started < 2.0
    assert frame[~frame["warmup"]]["end_s"].max() < 1.0


def test_summary_columns_and_throughput():
    frame = _frame(lambda: time.sleep(0.002), Schedule(count=100, warmup=0))
    summary = summarize(frame)
    expected = ["target", "path", "workload", "count", "errors", "throughput_qps", "mean_us", "p50_us", "p90_us",
                "p99_us", "p99.9_us", "max_us"]  # fmt: skip
    assert list(summary.columns) == expected
    row = summary.iloc[0]
    assert 2000 < row["p50_us"] < 20_000 and row["p50_us"] <= row["p90_us"] <= row["p99_us"] <= row["max_us"]
    assert 50 < row["throughput_qps"] < 500


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"targets": ("reader",), "workload": "insert"}, "workload"),
        ({"workload": "delete"}, "workload"),
        ({"path": "carrier-pigeon"}, "path"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1000}, "concurrency"),
        ({"rate": -5}, "rate"),
        ({"duration": 1, "count": 5}, "duration"),
        ({"duration": 3600}, "duration"),
        ({"count": 0}, "count"),
        ({"targets": ()}, "targets"),
    ],
)
def test_bad_benchmark_input_fails_before_any_call(options, field):
    with pytest.raises(ConfigError) as bad:
        benchmark(**options, config=Exploding(), backend=Exploding())
    assert bad.value.field == field and bad.value.fix


def _probes(rows: list[tuple[float, float, float | None, str | None]]) -> pd.DataFrame:
    """Probe rows from (sent, done, acknowledged at or None, served by)."""
    return pd.DataFrame(
        [
            {"probe": i, "sent_s": sent, "done_s": done, "acked_s": float("nan") if acked is None else acked,
             "acknowledged": acked is not None, "ok": acked is not None, "served_by": by}
            for i, (sent, done, acked, by) in enumerate(rows)
        ]
    )  # fmt: skip


def test_failover_downtime_runs_from_the_old_writers_last_write_to_the_new_writers_first():
    from labkit.bench.failover import FailoverReport

    # a slow probe sent before the call fails after it on the fenced old writer: it is not the clock's start
    probes = _probes([(0.0, 1.6, None, None), (0.8, 0.85, 0.84, "a"), (0.9, 0.95, 0.94, "a"),
                      (1.0, 1.7, None, None), (1.7, 1.8, None, None), (1.8, 1.9, 1.88, "b")])  # fmt: skip
    report = FailoverReport(probes, "a", "b", failover_at_s=1.05, acknowledged=3)
    assert report.downtime_s == pytest.approx(1.88 - 0.94)
    calm = _probes([(0.9, 0.95, 0.94, "a"), (1.0, 1.05, 1.04, "a"), (1.1, 1.15, 1.14, "b")])
    assert FailoverReport(calm, "a", "b", failover_at_s=1.02, acknowledged=3).downtime_s == pytest.approx(0.1)
    assert report.plot() is not None


def test_the_failover_plot_tells_the_writers_and_failures_apart_and_its_legend_hides_no_bar():
    """Issue 23: every bar was drawn in one colour and the legend sat on the bars after the failover."""
    from labkit.bench.failover import FailoverReport

    probes = _probes([(0.0, 0.1, 0.05, "db-1"), (0.2, 0.3, 0.25, "db-1"), (0.4, 0.9, None, None),
                      (1.0, 1.1, 1.05, "db-2"), (1.2, 1.3, 1.25, "db-2")])  # fmt: skip
    figure = FailoverReport(probes, "db-1", "db-2", failover_at_s=0.35, acknowledged=4).plot()
    axes = figure.axes[0]
    colours = {bars.get_label(): tuple(bars.get_colors()[0]) for bars in axes.collections}
    assert set(colours) == {"failed", "ok, served by db-1 (the writer before)", "ok, served by db-2 (the writer after)"}
    assert len(set(colours.values())) == 3, "the writer before, the writer after and failures each have a colour"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = axes.get_legend() or figure.legends[0]
    assert not legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer))


def test_failover_refuses_an_api_poll_faster_than_a_class_can_afford():
    from labkit.bench import failover

    with pytest.raises(ConfigError) as refused:
        failover(api_poll=0.05, config=Exploding(), backend=Exploding())
    assert refused.value.field == "api_poll" and "12 requests per second" in refused.value.fix


def _failing(
    errors: int, total: int = 100, error: str = "ProgrammingError: (1146, \"Table 'shop.products' doesn't exist\")"
):
    return pd.DataFrame({"warmup": [False] * total, "start_s": range(total),
                         "error": [error] * errors + [None] * (total - errors)})  # fmt: skip


def test_a_benchmark_with_more_than_a_small_share_of_failures_says_the_first_error_and_its_fix():
    from labkit.bench.failures import BenchmarkFailed, check, fix_for

    check(_failing(1))  # 1% is allowed
    with pytest.raises(BenchmarkFailed) as failed:
        check(_failing(100))
    assert "100 of 100 requests failed" in failed.value.message and "1146" in failed.value.message
    assert "labkit schema" in failed.value.fix
    assert "writer" in fix_for("OperationalError: (1290, 'The MariaDB server is running with the --read-only option')")
    assert "--save" in fix_for("RuntimeError: something else")


def test_the_direct_path_on_aws_refuses_more_samples_than_run_command_returns():
    from labkit.aws.backend import AwsBackend
    from labkit.config import LabConfig
    from labkit.errors import LabkitError

    with pytest.raises(LabkitError) as refused:  # raised before any AWS call: the test has no AWS to reach
        benchmark("writer", path="direct", count=5000, config=LabConfig(), backend=AwsBackend("us-east-1"))
    assert refused.value.field == "count" and "tunnel" in refused.value.fix


def _two_identical_servers(rng: np.random.Generator, rounds: int = 20, count: int = 100):
    """Latencies of two identical servers measured in rounds; each round has its own machine-wide drift."""
    drift = rng.normal(0, 40, rounds)
    return [rng.normal(300 + d, 15, count) for d in drift], [rng.normal(300 + d, 15, count) for d in drift]


def test_interleaved_rounds_and_a_round_bootstrap_find_no_difference_where_sequential_runs_did():
    from labkit.bench.compare import verdict
    from labkit.bench.stats import round_bootstrap_median_difference

    rng = np.random.default_rng(5)
    a, b = _two_identical_servers(rng)
    # one after the other (the old way): the first half of the run for a, the second for b, requests resampled
    first_half, second_half = np.concatenate(a[:10]), np.concatenate(b[10:])
    _, low, high = bootstrap_median_difference(first_half, second_half, resamples=500)
    assert low > 0 or high < 0  # drift passes for a difference: the interval excludes 0
    estimate, low, high = round_bootstrap_median_difference(a, b, resamples=500)
    assert verdict(low, high, 30.0, "a", "b") == "no practical difference"
    assert abs(estimate) < 5


def test_the_round_bootstrap_widens_with_drift_that_hits_one_arm_only():
    from labkit.bench.stats import round_bootstrap_median_difference

    rng = np.random.default_rng(9)
    a = [rng.normal(300 + rng.normal(0, 40), 15, 100) for _ in range(20)]  # a's rounds drift, b's do not
    b = [rng.normal(300, 15, 100) for _ in range(20)]
    _, low, high = round_bootstrap_median_difference(a, b, resamples=500)
    _, naive_low, naive_high = bootstrap_median_difference(np.concatenate(a), np.concatenate(b), resamples=500)
    assert high - low > 3 * (naive_high - naive_low)


def test_verdicts():
    from labkit.bench.compare import verdict

    assert verdict(-3, 4, 10, "w", "r") == "no practical difference"
    assert verdict(12, 20, 10, "w", "r") == "w is slower"
    assert verdict(-20, -12, 10, "w", "r") == "w is faster"
    assert verdict(-5, 15, 10, "w", "r").startswith("inconclusive")
    assert verdict(float("nan"), 1, 10, "w", "r") == "not measured"


def test_bad_compare_input_fails_before_any_call():
    from labkit.bench import compare

    for options, field in (({"rounds": 1}, "rounds"), ({"workload": "insert"}, "workload"),
                           ({"threshold": 2}, "threshold"), ({"count": 0}, "count")):  # fmt: skip
        with pytest.raises(ConfigError) as bad:
            compare(**options, config=Exploding(), backend=Exploding())
        assert bad.value.field == field


def test_the_c_path_words_errors_as_pymysql_does_and_is_chosen_when_installed():
    from labkit.bench import capi
    from labkit.bench.failures import fix_for

    error = capi.MySQLError(1146, "Table 'shop.products' doesn't exist")
    assert "labkit schema" in fix_for(f"{type(error).__name__}: {error}")
    assert capi.choose_driver("auto") == "capi" and capi.choose_driver("pymysql") == "pymysql"
    with pytest.raises(ConfigError) as bad:
        capi.choose_driver("odbc")
    assert bad.value.field == "driver"


def test_a_rounds_garbage_pause_collects_the_young_generations_only():
    """A full collection before every round walked the whole process (a test process: 286 ms a round, 93% of a
    50-round comparison's 19 s); the old generations are left to the collector once the run has ended."""
    from labkit.bench.harness import paused_garbage_collection

    collected: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            collected.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        with paused_garbage_collection():
            assert not gc.isenabled()
    finally:
        gc.callbacks.remove(seen)
    assert collected and max(collected) < 2, collected
    assert gc.isenabled()
