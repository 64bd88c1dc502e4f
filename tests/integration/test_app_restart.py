"""The web app restarted like the systemd service its user data installs (Restart=always, RestartSec=5).

A `kill -9` of the app's process is followed, after the unit's RestartSec, by a new process on the same port,
with the orders (in the database) intact and the state file counting the restart. An app that crashes at once
stops being restarted at the unit's start limit (StartLimitBurst within StartLimitIntervalSec), as systemd does.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
import signal
import time
import urllib.request

import pytest
from support.sandbox_lab import sandbox_lab

from labkit.access.lookup import running_instance
from labkit.access.schema import create_schema
from labkit.access.sql import close_engines, sql
from labkit.access.tunnel import close_all
from labkit.access.webapp import web_app
from labkit.app.server import Settings
from labkit.app.userdata import SOURCE_MARKER, render
from labkit.sandbox.daemon.apps import RestartPolicy
from labkit.sandbox.state import read_state

UNIT_RESTART_SEC = 5.0  # what labkit/app/userdata.py's unit says


@pytest.fixture(scope="module")
def lab(sandbox_home):
    config, backend = sandbox_lab("restart", "rita")
    create_schema(config=config, backend=backend)
    yield config, backend
    close_engines()
    close_all()


def _app(instance_id: str, until, timeout: float = 60.0) -> dict:
    """The instance's apps entry in the state file once `until(entry)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = (read_state().apps or {}).get(instance_id)
        if entry is not None and until(entry):
            return entry
        time.sleep(0.05)
    raise AssertionError(f"the app of {instance_id} never got there: {(read_state().apps or {}).get(instance_id)}")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_killed_app_is_restarted_on_its_port_with_its_orders_intact(lab):
    config, backend = lab
    instance_id = running_instance(backend, config=config)
    before = _app(instance_id, lambda app: app["status"] == "running")
    with web_app(config, backend) as app:
        order_id = app.add_order("Kim before the crash", product_id=3, quantity=2)

    killed = time.monotonic()
    os.kill(before["pid"], signal.SIGKILL)
    after = _app(instance_id, lambda app: app.get("restarts") == 1 and app["status"] == "running")
    deadline = time.monotonic() + 60
    while not _healthy(after["port"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    downtime = time.monotonic() - killed
    assert _healthy(after["port"]), f"no /health answer {downtime:.1f} s after the kill"
    assert downtime >= UNIT_RESTART_SEC  # systemd waits RestartSec before starting it again
    assert downtime < UNIT_RESTART_SEC + 6, f"restarted only after {downtime:.1f} s"
    assert after["pid"] != before["pid"] and after["port"] == before["port"]
    assert after["last_exit"] == "killed by SIGKILL"

    with web_app(config, backend) as app:
        status, _, page = app.request("GET", f"/?added={order_id}")
        assert status == 200 and "Kim before the crash" in page
        assert app.health()["ok"].all()
    rows = sql("SELECT customer, quantity FROM orders WHERE id = :id", params={"id": order_id}, config=config,
               backend=backend)  # fmt: skip
    assert rows.to_dict("records") == [{"customer": "Kim before the crash", "quantity": 2}]


def test_an_app_that_keeps_crashing_stops_at_the_units_start_limit(lab):
    config, backend = lab
    ec2 = backend.client("ec2")
    lab_instance = running_instance(backend, config=config)
    described = ec2.describe_instances(InstanceIds=[lab_instance])["Reservations"][0]["Instances"][0]
    user_data = base64.b64decode(
        ec2.describe_instance_attribute(InstanceId=lab_instance, Attribute="userData")["UserData"]["Value"]
    ).decode()
    crashing = base64.encodebytes(gzip.compress(b"raise SystemExit(3)  # a broken deploy\n")).decode().strip()
    user_data = re.sub(rf"(<<'{SOURCE_MARKER}'[^\n]*\n).*?(\n{SOURCE_MARKER}\n)", rf"\g<1>{crashing}\g<2>", user_data,
                       flags=re.S)  # fmt: skip
    user_data = user_data.replace("RestartSec=5\n", "RestartSec=100ms\nStartLimitIntervalSec=60\nStartLimitBurst=3\n")
    assert "StartLimitBurst=3" in user_data
    broken = ec2.run_instances(
        ImageId=described["ImageId"], InstanceType=described["InstanceType"], MinCount=1, MaxCount=1,
        SubnetId=described["SubnetId"], UserData=user_data,
    )["Instances"][0]["InstanceId"]  # fmt: skip
    try:
        failed = _app(broken, lambda app: app["status"] == "failed")
        assert failed["restarts"] == 2  # three starts in all: the first and two restarts
        assert "start request repeated too quickly" in failed["error"]
        assert failed["last_exit"] == "exit code 3"
        pid = failed["pid"]
        time.sleep(1.5)  # a few more passes of the daemon's loop: a failed unit is not started again
        assert read_state().apps[broken]["pid"] == pid and read_state().apps[broken]["restarts"] == 2
    finally:
        ec2.terminate_instances(InstanceIds=[broken])
    _app_gone(broken)


def _app_gone(instance_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while instance_id in (read_state().apps or {}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance_id not in (read_state().apps or {})


def test_the_restart_policy_is_read_from_the_unit_with_systemds_defaults():
    shipped = RestartPolicy.from_user_data(render(Settings(cluster="c", region="us-east-1")))
    assert shipped == RestartPolicy(restart="always", delay=UNIT_RESTART_SEC, interval=10.0, burst=5)
    assert RestartPolicy.from_user_data("#!/bin/bash\n") == RestartPolicy(restart="no", delay=0.1, interval=10, burst=5)
    custom = RestartPolicy.from_user_data("Restart=on-failure\nRestartSec=1min 30s\nStartLimitIntervalSec=0\n")
    assert (custom.restart, custom.delay, custom.interval) == ("on-failure", 90.0, 0.0)
    assert RestartPolicy.from_user_data("Restart=always\nRestartSec=soon\n").delay == 0.1  # ignored, as systemd does


@pytest.mark.parametrize(
    ("restart", "returncode", "restarts"),
    [("always", 0, True), ("always", -9, True), ("on-failure", 1, True), ("on-failure", -9, True),
     ("on-failure", 0, False), ("on-failure", -15, False), ("on-abnormal", 1, False), ("on-abnormal", -11, True),
     ("no", -9, False)],
)  # fmt: skip
def test_which_exits_restart_follows_systemd(restart, returncode, restarts):
    assert RestartPolicy(restart=restart).restarts_after(returncode) is restarts


def test_the_start_limit_counts_starts_within_the_interval():
    from collections import deque

    policy = RestartPolicy(restart="always", interval=10.0, burst=3)
    assert not policy.start_limit_hit(deque([0.0, 1.0]), now=2.0)
    assert policy.start_limit_hit(deque([0.0, 1.0, 2.0]), now=3.0)
    assert not policy.start_limit_hit(deque([0.0, 1.0, 2.0]), now=10.5)  # the first start left the window
    assert not RestartPolicy(interval=0, burst=1).start_limit_hit(deque([0.0, 0.1]), now=0.2)  # 0: no limit
