"""The sandbox keeps a lab as Aurora does: across `down` + `up`, a `kill -9` of the daemon, a stale state file
after a reboot, and a full or unwritable disk. Only an explicit reset deletes it.

Each test has its own LABKIT home (and so its own daemon): they stop and start it on purpose.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pymysql
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from support.sandbox_lab import aurora_cluster

from labkit import sandbox
from labkit.errors import SandboxError
from labkit.sandbox.daemon.persist import snapshot_path
from labkit.sandbox.processes import pid_alive
from labkit.sandbox.state import SandboxState, read_state, write_state


@pytest.fixture
def home(own_home):
    return own_home


def _backend():
    from labkit.sandbox.backend import SandboxBackend

    return SandboxBackend()


def _connect(endpoint: str, secret_arn: str) -> pymysql.Connection:
    secret = _backend().client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    host, port = sandbox.resolve(endpoint)
    return pymysql.connect(
        host=host, port=port, user="admin", password=json.loads(secret)["password"], database="shop",
        autocommit=True, connect_timeout=5,
    )  # fmt: skip


def _rows(conn: pymysql.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def _account() -> dict:
    """What a learner sees of the account: ids and states of the lab's resources."""
    backend = _backend()
    rds, ec2 = backend.client("rds"), backend.client("ec2")
    clusters = rds.describe_db_clusters()["DBClusters"]
    return {
        "clusters": sorted((c["DBClusterIdentifier"], c["DbClusterResourceId"], c["Endpoint"]) for c in clusters),
        "instances": sorted(
            (i["DBInstanceIdentifier"], i["DbiResourceId"]) for i in rds.describe_db_instances()["DBInstances"]
        ),
        "secrets": sorted(s["ARN"] for s in backend.client("secretsmanager").list_secrets()["SecretList"]),
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
    }


def _lab_with_a_row(name: str) -> tuple[dict, dict]:
    """A cluster with one row written on the writer and seen on the reader; returns (cluster, account)."""
    cluster = aurora_cluster(_backend(), name, nodes=("writer", "reader"))[0]
    backend = _backend()
    backend.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")
    with _connect(cluster["Endpoint"], cluster["MasterUserSecret"]["SecretArn"]) as conn:
        _rows(conn, "CREATE TABLE kept (id INT PRIMARY KEY, note VARCHAR(40))")
        _rows(conn, "INSERT INTO kept VALUES (1, 'survives')")
    return cluster, _account()


def _wait_available(count: int) -> None:
    sandbox.wait_for_databases(count)


def _assert_lab_back(cluster: dict, account: dict) -> None:
    _wait_available(2)
    assert _account() == account
    with _connect(cluster["Endpoint"], cluster["MasterUserSecret"]["SecretArn"]) as conn:
        assert _rows(conn, "SELECT note FROM kept") == [("survives",)]
        _rows(conn, "INSERT INTO kept VALUES (2, 'writable again')")  # the writer takes writes again
    deadline = time.monotonic() + 60  # generous: a loaded machine restarts servers slowly
    while True:  # the reader replicates from the writer again
        with _connect(cluster["ReaderEndpoint"], cluster["MasterUserSecret"]["SecretArn"]) as conn:
            if _rows(conn, "SELECT COUNT(*) FROM kept") == [(2,)]:
                break
        assert time.monotonic() < deadline, "the reader did not catch up after the restart"
        time.sleep(0.05)


def test_down_and_up_keep_the_ids_and_the_rows(home):
    sandbox.up(quiet=True)
    cluster, account = _lab_with_a_row("durable")
    sandbox.down(quiet=True)
    assert snapshot_path(home).exists() and (home / "data" / "instances" / "durable-writer").is_dir()
    started = time.monotonic()
    sandbox.up(quiet=True)
    _wait_available(2)
    print(f"restore after down + up: {time.monotonic() - started:.2f} s")
    _assert_lab_back(cluster, account)


def test_kill_9_of_the_daemon_loses_no_acknowledged_call(home):
    state = sandbox.up(quiet=True)
    cluster, _ = _lab_with_a_row("crashed")
    rds = _backend().client("rds")
    rds.add_tags_to_resource(ResourceName=cluster["DBClusterArn"], Tags=[{"Key": "last", "Value": "call"}])
    account = _account()
    os.kill(state.daemon_pid, signal.SIGKILL)  # right after the call was acknowledged; its servers live on
    deadline = time.monotonic() + 60
    while pid_alive(state.daemon_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox.status()["running"] is False
    sandbox.up(quiet=True)
    _assert_lab_back(cluster, account)
    tags = _backend().client("rds").list_tags_for_resource(ResourceName=cluster["DBClusterArn"])["TagList"]
    assert {"Key": "last", "Value": "call"} in tags


def test_a_stale_state_file_naming_another_process_is_not_a_running_sandbox(home, tmp_path):
    sandbox.up(quiet=True)
    cluster, account = _lab_with_a_row("rebooted")
    state = read_state()
    sandbox.down(quiet=True)
    # after a reboot: the file survived, its pid now belongs to an unrelated live process, nothing listens
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_state(SandboxState(**{**state.to_json(), "daemon_pid": stranger.pid}), home)
        assert sandbox.status() == {"running": False, "home": str(home)}
        cli = subprocess.run(
            [sys.executable, "-m", "labkit.cli.main", "sandbox", "status"], capture_output=True, text=True, timeout=60
        )
        assert cli.returncode == 3 and "not running" in cli.stdout and "Traceback" not in cli.stderr
        plan = subprocess.run(
            [sys.executable, "-m", "labkit.cli.main", "plan", "--lab", "rebooted"], capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert "Traceback" not in plan.stderr + plan.stdout
        assert "labkit sandbox up" in plan.stderr + plan.stdout
        sandbox.up(quiet=True)
        assert pid_alive(stranger.pid)  # never mistaken for the daemon, never killed
    finally:
        stranger.kill()
        stranger.wait()
    _assert_lab_back(cluster, account)


def test_reset_asks_and_only_reset_deletes(home):
    sandbox.up(quiet=True)
    _lab_with_a_row("wiped")
    refused = subprocess.run(
        [sys.executable, "-m", "labkit.cli.main", "sandbox", "reset"], capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert len(_account()["clusters"]) == 1
    sandbox.down(quiet=True)
    done = subprocess.run(
        [sys.executable, "-m", "labkit.cli.main", "sandbox", "reset", "--yes"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not snapshot_path(home).exists() and not (home / "data" / "instances").exists()
    sandbox.up(quiet=True)
    assert _account()["clusters"] == []


def test_a_damaged_snapshot_is_refused_with_a_way_out_and_kept(home):
    sandbox.up(quiet=True)
    _lab_with_a_row("damaged")
    sandbox.down(quiet=True)
    path = snapshot_path(home)
    path.write_bytes(path.read_bytes()[:5000])  # cut short, header and all
    with pytest.raises(SandboxError) as refused:
        sandbox.up(quiet=True)
    assert "cannot be" in refused.value.message and "labkit sandbox reset --yes" in refused.value.fix
    assert path.exists() and (home / "data" / "instances" / "damaged-writer").is_dir()  # nothing deleted
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    path.write_bytes(json.dumps({**header, "format": 999}).encode() + b"\n")
    with pytest.raises(SandboxError, match="format this labkit"):
        sandbox.up(quiet=True)
    sandbox.reset()
    assert sandbox.up(quiet=True) and _account()["clusters"] == []


def test_a_full_disk_fails_the_call_whole_and_keeps_serving(home):
    sandbox.up(quiet=True)
    cluster, account = _lab_with_a_row("fulldisk")
    rds = (
        _backend()
        .session()
        .client("rds", endpoint_url=_backend().endpoint_url(), config=Config(retries={"total_max_attempts": 1}))
    )  # one attempt: SDKs retry a 503, and the retry would find the disk no longer full
    # the next save's temporary file is /dev/full: its write fails with ENOSPC, as on a full disk, root or not
    snapshot = snapshot_path(home)
    snapshot.with_name(f".{snapshot.name}.tmp").symlink_to("/dev/full")
    with pytest.raises(ClientError) as failed:
        rds.add_tags_to_resource(ResourceName=cluster["DBClusterArn"], Tags=[{"Key": "k", "Value": "v"}])
    error = failed.value.response["Error"]
    assert error["Code"] == "ServiceUnavailable" and "No space left on device" in error["Message"]
    assert "nothing was changed" in error["Message"]
    tags = rds.list_tags_for_resource(ResourceName=cluster["DBClusterArn"])["TagList"]
    assert {"Key": "k", "Value": "v"} not in tags  # rolled back: not half applied
    assert _account() == account  # still serving, the databases too
    rds.add_tags_to_resource(ResourceName=cluster["DBClusterArn"], Tags=[{"Key": "k", "Value": "v"}])
    sandbox.down(quiet=True)
    sandbox.up(quiet=True)
    _assert_lab_back(cluster, account)
    tags = _backend().client("rds").list_tags_for_resource(ResourceName=cluster["DBClusterArn"])["TagList"]
    assert {"Key": "k", "Value": "v"} in tags
