"""A restarted daemon calls the DB instances it starts again `starting`, not `available`, before it serves
(sandbox/daemon/rdsmodel.restarting): a waiter then waits for their servers, as it would on AWS."""

from __future__ import annotations

import subprocess
import sys

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


# In a child process: importing the daemon's entry point sets moto's settings for the whole process.
FIRST_PASS = """
import sys
from pathlib import Path
from labkit.sandbox.daemon.main import SandboxDaemon

daemon = SandboxDaemon(Path(sys.argv[1]), 0, "us-east-1")
order = []


class Reconciler:
    def catching_up(self):
        return False


def run_pass():
    order.append("pass")
    daemon.stopping.set()


def wait(timeout):
    order.append("wait")
    return True


daemon.reconciler, daemon.run_pass, daemon.wake.wait = Reconciler(), run_pass, wait
daemon.serve()
print(",".join(order))
"""


def test_the_daemon_runs_its_first_pass_at_once_not_a_poll_interval_after_it_serves(tmp_path):
    """A restored lab's servers start in the first pass: it waited POLL_SECONDS (1 s) before, as nothing woke it."""
    done = subprocess.run(
        [sys.executable, "-c", FIRST_PASS, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "pass,wait"


ONE_CLIENT = """
import sys
import threading
import time
from pathlib import Path
from labkit.sandbox.daemon.main import SandboxDaemon

daemon = SandboxDaemon(Path(sys.argv[1]), 0, "us-east-1")
made = []


class Session:
    def client(self, service, **settings):
        made.append(service)
        time.sleep(0.05)  # a client's service model takes a while to parse
        return object()


daemon._session = Session()
threads = [threading.Thread(target=daemon.client, args=("rds", "us-east-1")) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(made))
"""


def test_threads_asking_for_the_same_client_at_once_share_one(tmp_path):
    """The warm-up and a restored lab's first pass both ask for RDS's client as the daemon starts: each made its
    own, parsing RDS's service model twice on the way to the restored databases."""
    done = subprocess.run(
        [sys.executable, "-c", ONE_CLIENT, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "1"
