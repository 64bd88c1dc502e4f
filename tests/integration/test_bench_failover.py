"""failover() against a real sandbox: the clock, the RDS API's rate, and the probe thread's lifetime.

Each test fails the cluster over (roles swap back and forth); none assumes which instance is the writer.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.sandbox_lab import sandbox_lab
from support.strict import aws_error

from labkit.access.sql import close_engines
from labkit.access.tunnel import close_all
from labkit.bench import failover

failover_module = importlib.import_module("labkit.bench.failover")  # the package's `failover` is the function
RDS_SUSTAINED_PER_SECOND = 12  # "Request throttling for the Amazon RDS API": 300 burst, 12/s sustained


@pytest.fixture(scope="module")
def lab(sandbox_home):
    config, backend = sandbox_lab("failover", "fay")
    yield config, backend
    close_engines()
    close_all()


class ThrottlingLayer:
    """RDS's rate limit for DescribeDBClusters while a failover is watched, shared by a class: `learners`
    clients polling as this one does must stay within 12/s together. The lookups before the failover call are
    a burst (RDS allows 300); from the call on, every call is counted and a rate over the class's share
    raises ThrottlingException as RDS would."""

    def __init__(self, client: Any, learners: int) -> None:
        self.client = client
        self.learners = learners
        self.failover_called: float | None = None
        self.calls: list[float] = []  # DescribeDBClusters after the failover call

    def __enter__(self) -> ThrottlingLayer:
        self.client.meta.events.register("before-call.rds.DescribeDBClusters", self._count)
        self.client.meta.events.register("before-call.rds.FailoverDBCluster", self._failover)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.meta.events.unregister("before-call.rds.DescribeDBClusters", self._count)
        self.client.meta.events.unregister("before-call.rds.FailoverDBCluster", self._failover)

    def _failover(self, **_: Any) -> None:
        self.failover_called = time.monotonic()

    def _count(self, **_: Any) -> None:
        if self.failover_called is None:
            return
        now = time.monotonic()
        self.calls.append(now)
        in_last_second = sum(1 for t in self.calls if now - t < 1.0)
        if in_last_second * self.learners > RDS_SUSTAINED_PER_SECOND:
            raise aws_error("DescribeDBClusters", "ThrottlingException", "Rate exceeded")


def test_the_failover_polls_the_api_at_a_rate_a_class_can_afford(lab):
    config, backend = lab
    with ThrottlingLayer(backend.client("rds"), learners=12) as layer:
        report = failover(settle=1.0, timeout=60, config=config, backend=backend)
    assert report.writer_after != report.writer_before and report.lost == []
    assert layer.calls, "the failover never asked the API for the new writer"
    gaps = [b - a for a, b in zip([layer.failover_called, *layer.calls], layer.calls, strict=False)]
    assert all(gap >= 0.95 for gap in gaps[1:]), gaps  # at most one poll a second: 12 learners stay within 12/s


@pytest.fixture
def slow_first_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """The first probe connects, then takes `slow` s more before its write (a fresh tunnel's first request):
    sent before the failover call, it would write after it, on the fenced old writer."""
    slow = 2.5
    plain = failover_module._probe_connection
    calls = {"n": 0}

    def probe_connection(connect: Any, secret: Any) -> Any:
        calls["n"] += 1
        connection = plain(connect, secret)
        if calls["n"] == 1:
            time.sleep(slow)
        return connection

    monkeypatch.setattr(failover_module, "_probe_connection", probe_connection)
    yield slow


def test_a_slow_first_probe_does_not_count_as_downtime(lab, slow_first_probe):
    """Issue 17: the first probe through a fresh tunnel was in flight at the call, failed with 1290 on the
    fenced old writer, and its send time started the downtime clock."""
    config, backend = lab
    report = failover(interval=0.1, baseline=1.0, settle=1.0, timeout=60, path="tunnel", config=config, backend=backend)
    assert report.downtime_s < slow_first_probe  # the slow probe is not in it
    probes = report.probes
    acked = probes[probes["acknowledged"]]
    old = acked[(acked["served_by"] == report.writer_before) & (acked["acked_s"] < report.failover_at_s)]
    assert len(old) >= 2  # the warm-up and at least one periodic write on the old writer before the call
    last_old = acked[acked["served_by"] == report.writer_before]["acked_s"].max()
    first_new = acked[(acked["served_by"] == report.writer_after)]["acked_s"].min()
    assert report.downtime_s == pytest.approx(first_new - last_old)
    assert report.lost == []


def test_an_error_mid_failover_stops_the_probe_thread(lab):
    config, backend = lab
    client = backend.client("rds")

    def refuse(**_: Any) -> None:
        raise aws_error("FailoverDBCluster", "InvalidDBClusterStateFault", "DbCluster is not available")

    client.meta.events.register("before-call.rds.FailoverDBCluster", refuse)
    try:
        with pytest.raises(Exception, match="InvalidDBClusterStateFault"):
            failover(baseline=0.3, timeout=30, config=config, backend=backend)
    finally:
        client.meta.events.unregister("before-call.rds.FailoverDBCluster", refuse)
    assert [t for t in threading.enumerate() if t.name == "failover-monitor"] == []
