"""Surviving a failover from the application's side: client strategies run side by side through the same failure.

Each strategy is a small loop a learner can read (naive.py, backoff.py, pool.py, topology.py), written against
one small harness (app.py); run.py makes the failure while they all write, report.py measures from the samples.
"""

from labkit.failover_lab.report import FailoverLab
from labkit.failover_lab.run import FAILURES, STRATEGIES, failover_lab

__all__ = ["FAILURES", "STRATEGIES", "FailoverLab", "failover_lab"]
