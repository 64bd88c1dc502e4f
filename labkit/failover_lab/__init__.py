"""Surviving a failover from the application's side: client strategies run side by side through the same failure.

Each strategy is a small loop a learner can read (naive.py, backoff.py, pool.py, topology.py; on request wrapper.py,
AWS's Advanced Python Wrapper), written against one small harness (app.py); loops.py runs them side by side where an application runs (in the
sandbox here; on AWS on the lab's instance: remote.py ships them, onhost.py runs them), failures.py makes the
failure through the RDS API, run.py puts it together, report.py measures from the samples.
"""

from labkit.failover_lab.report import FailoverLab
from labkit.failover_lab.run import DEFAULT_STRATEGIES, FAILURES, STRATEGIES, failover_lab

__all__ = ["DEFAULT_STRATEGIES", "FAILURES", "STRATEGIES", "FailoverLab", "failover_lab"]
