"""A restarted daemon calls the DB instances it starts again `starting`, not `available`, before it serves
(sandbox/daemon/rdsmodel.restarting): a waiter then waits for their servers, as it would on AWS."""

from __future__ import annotations

import boto3
from moto import mock_aws

from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.sandbox.daemon import rdsmodel


def test_only_the_instances_started_again_are_starting_and_only_when_the_saved_state_says_available():
    with mock_aws():
        rds = boto3.client("rds", region_name="eu-west-1", **FAKE_CREDENTIALS)
        rds.create_db_cluster(
            DBClusterIdentifier="lab", Engine="aurora-mysql", MasterUsername="admin", MasterUserPassword="x" * 12
        )
        for name in ("lab-writer", "lab-reader", "lab-failed"):
            rds.create_db_instance(
                DBInstanceIdentifier=name, DBClusterIdentifier="lab", Engine="aurora-mysql",
                DBInstanceClass="db.t4g.medium",
            )  # fmt: skip
        rdsmodel.set_status("eu-west-1", "lab-failed", "failed")
        changed = rdsmodel.restarting(["lab-writer", "lab-failed", "gone"])
        statuses = {
            i["DBInstanceIdentifier"]: i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]
        }
    assert changed == ["lab-writer"]
    assert statuses == {"lab-writer": "starting", "lab-reader": "available", "lab-failed": "failed"}
