"""`labkit preflight` against the real sandbox: every check answers, and what the sandbox cannot check (IAM
simulation, account quotas, AWS's session plugin) is a warn row that says so, never a pass. The engine catalog moto lacks is the
sandbox's own (daemon/catalog.py), so the engine row is checked for real, and a retired version is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from labkit.config import LabConfig
from labkit.engines import default_engine
from labkit.lab.preflight import FAIL, PASS, WARN, preflight
from labkit.sandbox.backend import SandboxBackend

NOT_CHECKED = "not checked here"


def test_preflight_runs_against_the_sandbox_and_never_fakes_a_pass(sandbox_backend):
    started = time.monotonic()
    report = preflight(LabConfig(), SandboxBackend())
    took = time.monotonic() - started
    rows = {row.check: row for row in report.rows}
    assert rows["credentials"].status == PASS and rows["region"].status == PASS
    assert rows["EC2 instance type"].status == PASS and rows["AMI"].status == PASS
    for check in ("permissions", "quotas", "session-manager-plugin"):  # the plugin: issue 23, a made-up PASS
        assert rows[check].status == WARN and NOT_CHECKED in rows[check].detail, rows[check]
    assert "newer than 1.2.497.0" in rows["session-manager-plugin"].fix
    engine = rows["engine and DB class"]
    assert engine.status == PASS and default_engine().catalog.default in engine.detail, engine
    assert "on AWS (the sandbox itself is free)" in rows["cost per hour"].detail
    assert all(row.status != FAIL for row in report.rows), report
    print(f"preflight wall time in the sandbox: {took:.2f} s")  # shown with -s; the report quotes it
    assert took < 30


def test_the_cli_prints_json_and_exits_by_its_rows(sandbox_backend):
    run = subprocess.run(
        [sys.executable, "-m", "labkit.cli.main", "preflight", "--json"], capture_output=True, text=True, timeout=120
    )
    data = json.loads(run.stdout)
    assert run.returncode == (0 if data["ok"] else 1), run.stderr
    assert [row["check"] for row in data["rows"]][:3] == ["credentials", "region", "permissions"]


def test_the_sandbox_catalog_refuses_a_retired_version_and_an_unknown_class(sandbox_backend):
    rows = {
        row.check: row for row in preflight(LabConfig(engine_version="8.0.mysql_aurora.3.05.2"), SandboxBackend()).rows
    }
    assert rows["engine and DB class"].status == FAIL and "deprecated" in rows["engine and DB class"].detail
    rds = SandboxBackend().client("rds")
    lts = rds.describe_db_engine_versions(Engine="aurora-mysql", EngineVersion="8.0.mysql_aurora.3.04.4")
    assert [v["Status"] for v in lts["DBEngineVersions"]] == ["available"]
    options = rds.describe_orderable_db_instance_options(
        Engine="aurora-mysql", EngineVersion="8.0.mysql_aurora.3.10.1", DBInstanceClass="db.t4g.medium"
    )["OrderableDBInstanceOptions"]
    assert [o["DBInstanceClass"] for o in options] == ["db.t4g.medium"] and options[0]["AvailabilityZones"]


def test_the_sandbox_offers_aurora_mysql_8_4_and_a_pin_in_the_guides_spelling_resolves_to_it(sandbox_backend):
    """Issue 25 item 3: the sandbox's catalog lists Aurora MySQL 8.4 as the API spells it, in its own family."""
    rds = SandboxBackend().client("rds")
    [listed] = rds.describe_db_engine_versions(Engine="aurora-mysql", EngineVersion="8.4.mysql_aurora.8.4.7")[
        "DBEngineVersions"
    ]
    assert (listed["DBParameterGroupFamily"], listed["MajorEngineVersion"]) == ("aurora-mysql8.4", "8.4")
    rows = {row.check: row for row in preflight(LabConfig(engine_version="8.4.7"), SandboxBackend()).rows}
    engine = rows["engine and DB class"]
    assert engine.status == PASS and "8.4.mysql_aurora.8.4.7 (pinned in the config as 8.4.7)" in engine.detail
