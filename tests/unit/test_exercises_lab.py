"""02's, 03's and 05's exercises against wrong states, on a whole lab in the strict in-process moto: each check
reads the control plane (the cluster, the instance, the rules through the reachability engine) or the learner's
own measurement, and says what is wrong. (04's and 05's database checks run on the sandbox: integration.)"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

import labkit
from labkit.bench.compare import Comparison
from labkit.config import LabConfig
from labkit.lab.apply import apply
from labkit.workbook.exercises import exercise

CONFIG = LabConfig()


@pytest.fixture
def lab(strict_backend):
    """A whole lab, its rules written (as the learner does in 01)."""
    return apply(CONFIG, strict_backend, stream=io.StringIO()).ids


def _said(backend, exercise_id, *answers):
    return "\n".join(exercise(exercise_id, CONFIG, backend).evaluate(*answers).problems)


def test_the_reader_endpoint_is_told_from_the_writer_and_the_instance_endpoints(strict_backend, lab):
    cluster = strict_backend.client("rds").describe_db_clusters(DBClusterIdentifier=lab["cluster"])["DBClusters"][0]
    reader = strict_backend.client("rds").describe_db_instances(DBInstanceIdentifier=lab["db-2"])
    assert _said(strict_backend, "02.reader-endpoint", cluster["ReaderEndpoint"]) == ""
    assert _said(strict_backend, "02.reader-endpoint", cluster["ReaderEndpoint"].upper() + ".") == ""
    assert "is the cluster (writer) endpoint" in _said(strict_backend, "02.reader-endpoint", cluster["Endpoint"])
    instance = reader["DBInstances"][0]["Endpoint"]["Address"]
    said = _said(strict_backend, "02.reader-endpoint", instance)
    assert f"is the endpoint of the instance {lab['db-2']}" in said and "after a failover" in said
    assert "not a host name" in _said(strict_backend, "02.reader-endpoint", {"host": instance})
    assert "is no endpoint of cluster" in _said(strict_backend, "02.reader-endpoint", "db.example.com")


def test_backups_are_read_back_from_the_cluster(strict_backend, lab):
    rds = strict_backend.client("rds")
    assert "keeps 1 day of backups" in _said(strict_backend, "02.backups")
    rds.modify_db_cluster(DBClusterIdentifier=lab["cluster"], BackupRetentionPeriod=3, ApplyImmediately=True)
    assert "keeps 3 days of backups" in _said(strict_backend, "02.backups")
    rds.modify_db_cluster(DBClusterIdentifier=lab["cluster"], BackupRetentionPeriod=7, ApplyImmediately=True)
    outcome = exercise("02.backups", CONFIG, strict_backend).evaluate()
    assert outcome.passed and outcome.checked == f"cluster {lab['cluster']} keeps 7 days of backups"


def test_imdsv2_compares_the_answer_with_the_instance(strict_backend, lab):
    assert _said(strict_backend, "03.imdsv2", "required") == ""
    assert "HttpTokens is not 'optional'" in _said(strict_backend, "03.imdsv2", "optional")
    strict_backend.client("ec2").modify_instance_metadata_options(InstanceId=lab["instance"], HttpTokens="optional")
    assert "the instance answers IMDSv1 (HttpTokens=optional)" in _said(strict_backend, "03.imdsv2", "optional")


def test_fix_reach_asks_the_reachability_engine_and_refuses_an_address_range(strict_backend, lab):
    assert exercise("03.fix-reach", CONFIG, strict_backend).evaluate().passed
    labkit.revoke_rules(CONFIG, group="sg-db", port=3306, backend=strict_backend)
    said = _said(strict_backend, "03.fix-reach")
    assert "instance -> writer on tcp 3306: BLOCKED at security group ingress" in said
    assert "instance -> reader on tcp 3306: BLOCKED" in said
    labkit.authorize_ingress(CONFIG, "sg-db", 3306, cidr="10.42.0.0/16", backend=strict_backend)
    said = _said(strict_backend, "03.fix-reach")
    assert "BLOCKED" not in said and "sg-db admits tcp 3306 from 10.42.0.0/16" in said, "reachable, but by CIDR"
    labkit.revoke_rules(CONFIG, group="sg-db", port=3306, backend=strict_backend)
    blocked = labkit.can_reach("instance", "writer", 3306, CONFIG, strict_backend)
    blocked.fixes[0].apply(strict_backend)  # the other way the hint names
    assert exercise("03.fix-reach", CONFIG, strict_backend).evaluate().passed


def _comparison(backend, writer_us: float, reader_us: float) -> Comparison:
    """A measurement of 20 rounds of 50 requests per arm, the writer's median `writer_us`, the reader's `reader_us`."""
    rng = np.random.default_rng(0)
    rows = [
        {"target": target, "path": "direct", "round": r, "latency_us": median + rng.normal(0, 1), "error": None,
         "warmup": False}
        for r in range(20) for target, median in (("writer", writer_us), ("reader", reader_us)) for _ in range(50)
    ]  # fmt: skip
    return Comparison(
        pd.DataFrame(rows), [("writer", "direct"), ("reader", "direct")], metadata={"backend": backend.name}
    )


def test_the_prediction_is_one_of_three_and_the_interval_is_read_against_the_measurement(strict_backend, lab, lab_home):
    assert "write one of 'writer is faster'" in _said(strict_backend, "05.predict", "faster")
    exercise("05.predict", CONFIG, strict_backend).check("Writer is slower")
    same = _comparison(strict_backend, 200.0, 200.0)
    assert "but the interval" in _said(strict_backend, "05.interval", False, same)
    assert "is inside +/-" in _said(strict_backend, "05.interval", False, same)
    passed = exercise("05.interval", CONFIG, strict_backend).check(True, same)
    assert "no practical difference" in repr(passed)
    assert "you predicted 'writer is slower'; the measurement says 'no practical difference'" in repr(passed)
    slower = _comparison(strict_backend, 300.0, 200.0)
    assert "is not all inside +/-" in _said(strict_backend, "05.interval", True, slower)
    assert _said(strict_backend, "05.interval", False, slower) == ""
    assert _said(strict_backend, "05.interval", np.True_, same) == "", "numpy's bool, as pandas comparisons give it"
    assert "True or False" in _said(strict_backend, "05.interval", "yes", same)
    assert "pass the comparison" in _said(strict_backend, "05.interval", True, "comparison")
    other = Comparison(same.samples, [("writer", "direct"), ("reader", "direct")], metadata={"backend": "aws"})
    assert "measure the writer against the reader of this lab" in _said(strict_backend, "05.interval", True, other)
