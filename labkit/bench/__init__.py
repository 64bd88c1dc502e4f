"""Writer against reader, measured honestly: every sample kept, percentiles, a confidence interval, plots,
replica lag and a failover.

    benchmark(("writer", "reader"), workload="point", path="tunnel", count=1000)   a BenchResult
    compare(("writer", "reader"), rounds=20, count=100)                            a Comparison (interleaved)
    tunnel_cost(("writer", "reader"))      the tunnel against direct, interleaved in rounds: a table
    replica_lag(markers=50)                                                         a LagResult
    failover()                                                                      a FailoverReport
    watch_failover(app)                     failover() while the web app is polled: an AppFailoverWatch
"""

from __future__ import annotations

from labkit.bench.appfailover import AppFailoverWatch, watch_failover
from labkit.bench.compare import Comparison, compare
from labkit.bench.failover import FailoverReport, failover
from labkit.bench.harness import Schedule
from labkit.bench.lag import LagResult, replica_lag
from labkit.bench.runner import BenchResult, benchmark
from labkit.bench.stats import bootstrap_median_difference, percentile, summarize
from labkit.bench.tunnelcost import tunnel_cost
from labkit.bench.workloads import WORKLOADS

__all__ = [
    "WORKLOADS",
    "AppFailoverWatch",
    "BenchResult",
    "Comparison",
    "FailoverReport",
    "LagResult",
    "Schedule",
    "benchmark",
    "bootstrap_median_difference",
    "compare",
    "failover",
    "percentile",
    "replica_lag",
    "summarize",
    "tunnel_cost",
    "watch_failover",
]
