"""`labkit preflight` / labkit.preflight(): read-only, one row per check, the right row and exit code.

Against in-process moto with the strict layer (its engine catalog), and with botocore's Stubber for what moto
cannot answer: a denied action (iam:SimulatePrincipalPolicy), a class not orderable, a quota exhausted.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.cli import options
from labkit.cli.main import main
from labkit.config import LabConfig
from labkit.lab.apply import apply
from labkit.lab.preflight import FAIL, PASS, WARN, PreflightFailed, learner_grants, preflight

PLUGIN = Path(__file__).resolve().parents[1] / "support" / "fakes" / "session-manager-plugin"
USER_ARN = "arn:aws:iam::123456789012:user/ada"


def changing_calls(backend) -> list[str]:
    calls: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        operation = event_name.split(".")[-1]
        if not operation.startswith(("Describe", "List", "Get", "Simulate")):
            calls.append(operation)

    backend.session().events.register("before-parameter-build", record)
    return calls


@pytest.fixture
def backend(strict_backend, monkeypatch):
    """The strict in-process backend with the suite's stand-in session plugin (prints 1.2.650.0)."""
    monkeypatch.setattr(strict_backend, "session_plugin", lambda: [str(PLUGIN)])
    return strict_backend


def stubbed(backend, service: str) -> Stubber:
    """Answer `service` from a Stubber from now on (the backend's other services stay on moto)."""
    client = boto3.Session(region_name=backend.region, **FAKE_CREDENTIALS).client(service)
    stubber = Stubber(client)
    stubber.activate()
    original = backend.client
    backend.client = lambda name: client if name == service else original(name)
    return stubber


def row(report, check: str):
    [found] = [r for r in report.rows if r.check == check]
    return found


def test_on_moto_every_check_answers_and_nothing_is_created(backend):
    calls = changing_calls(backend)
    report = preflight(LabConfig(), backend)
    assert calls == [], "the preflight only reads"
    checks = [r.check for r in report.rows]
    assert checks == [
        "credentials", "region", "permissions", "engine and DB class", "EC2 instance type", "AMI", "quotas",
        "database driver", "session-manager-plugin", "cost per hour", "lab already running",
    ]  # fmt: skip
    assert row(report, "credentials").status == PASS and "123456789012" in row(report, "credentials").detail
    assert row(report, "region").status == PASS and "partition aws" in row(report, "region").detail
    assert row(report, "engine and DB class").status == PASS
    assert "db.t4g.medium orderable" in row(report, "engine and DB class").detail
    assert row(report, "EC2 instance type").status == PASS and "x86_64" in row(report, "EC2 instance type").detail
    assert row(report, "AMI").status == PASS and row(report, "AMI").detail.startswith("ami-")
    assert row(report, "session-manager-plugin").status == PASS
    assert row(report, "cost per hour").status == PASS and "per hour" in row(report, "cost per hour").detail
    assert row(report, "lab already running").status == PASS
    # moto has no policy simulation: said plainly, never a pass
    assert row(report, "permissions").status == WARN and "not checked here" in row(report, "permissions").detail
    assert report.ok and report.exit_code == 0
    assert json.loads(report.to_json())["ok"] is True
    assert "<table" in report._repr_html_() and "mathjax_ignore" in report._repr_html_()


def test_a_lab_already_running_is_a_warn_with_its_cost(backend):
    apply(LabConfig(), backend, stream=io.StringIO())
    report = preflight(LabConfig(), backend)
    running = row(report, "lab already running")
    assert running.status == WARN and "per hour" in running.detail and "labkit down" in running.fix
    assert report.ok


def test_a_graviton_type_gets_the_arm64_ami(backend):
    report = preflight(LabConfig(instance_type="t4g.micro"), backend)
    assert "arm64" in row(report, "EC2 instance type").detail
    assert "al2023-ami-kernel-default-arm64" in row(report, "AMI").detail


def simulation(decisions: dict[str, str]) -> dict[str, Any]:
    return {
        "EvaluationResults": [
            {"EvalActionName": action, "EvalDecision": decision} for action, decision in decisions.items()
        ],
        "IsTruncated": False,
    }


def queue_simulation(backend, decide) -> Stubber:
    """Stub STS (an IAM user) and IAM's simulation; `decide(action)` gives each action's decision."""
    sts = stubbed(backend, "sts")
    sts.add_response("get_caller_identity", {"Account": "123456789012", "Arn": USER_ARN, "UserId": "AIDAADA"})
    iam = stubbed(backend, "iam")
    actions = sorted(learner_grants())
    for start in range(0, len(actions), 50):
        batch = actions[start : start + 50]
        iam.add_response(
            "simulate_principal_policy",
            simulation({a: decide(a) for a in batch}),
            {"PolicySourceArn": USER_ARN, "ActionNames": batch, "ContextEntries": ANY},
        )
    return iam


def test_a_denied_action_is_a_fail_row_naming_the_action_and_its_policy_file(backend):
    iam = queue_simulation(backend, lambda a: "implicitDeny" if a == "ec2:DescribeVpcs" else "allowed")
    report = preflight(LabConfig(), backend)
    iam.assert_no_pending_responses()
    permissions = row(report, "permissions")
    assert permissions.status == FAIL
    assert "ec2:DescribeVpcs" in permissions.detail and "not granted" in permissions.detail
    assert "policies/learner-read.json" in permissions.fix
    assert not report.ok and report.exit_code == 1


def test_an_explicit_deny_fails_even_for_a_tag_scoped_grant(backend):
    scoped = next(a for a, g in learner_grants().items() if not g["exact"])
    queue_simulation(backend, lambda a: "explicitDeny" if a == scoped else "allowed")
    permissions = row(preflight(LabConfig(), backend), "permissions")
    assert permissions.status == FAIL and scoped in permissions.detail and "remove the deny" in permissions.fix


def test_an_unconfirmable_tag_scoped_grant_is_a_warn_not_a_fail(backend):
    scoped = next(a for a, g in learner_grants().items() if not g["exact"])
    queue_simulation(backend, lambda a: "implicitDeny" if a == scoped else "allowed")
    permissions = row(preflight(LabConfig(), backend), "permissions")
    assert permissions.status == WARN and scoped in permissions.detail


def test_a_caller_who_may_not_simulate_gets_a_warn_that_says_so(backend):
    sts = stubbed(backend, "sts")
    sts.add_response("get_caller_identity", {"Account": "123456789012", "Arn": USER_ARN, "UserId": "AIDAADA"})
    iam = stubbed(backend, "iam")
    iam.add_client_error("simulate_principal_policy", service_error_code="AccessDenied", service_message="no")
    permissions = row(preflight(LabConfig(), backend), "permissions")
    assert permissions.status == WARN and "iam:SimulatePrincipalPolicy" in permissions.detail


def test_an_assumed_role_is_simulated_as_its_role(backend):
    sts = stubbed(backend, "sts")
    session_arn = "arn:aws:sts::123456789012:assumed-role/LabLearner/ada@example.com"
    sts.add_response("get_caller_identity", {"Account": "123456789012", "Arn": session_arn, "UserId": "AROA:ada"})
    iam = stubbed(backend, "iam")
    role = "arn:aws:iam::123456789012:role/LabLearner"
    actions = sorted(learner_grants())
    for start in range(0, len(actions), 50):
        batch = actions[start : start + 50]
        iam.add_response(
            "simulate_principal_policy",
            simulation(dict.fromkeys(batch, "allowed")),
            {"PolicySourceArn": role, "ActionNames": batch, "ContextEntries": ANY},
        )
    permissions = row(preflight(LabConfig(), backend), "permissions")
    assert permissions.status == PASS and role in permissions.detail


def test_a_class_not_orderable_is_a_fail_row(backend):
    rds = stubbed(backend, "rds")
    version = "8.0.mysql_aurora.3.10.1"
    rds.add_response(
        "describe_db_engine_versions",
        {"DBEngineVersions": [{"Engine": "aurora-mysql", "EngineVersion": version, "Status": "available"}]},
    )
    rds.add_response("describe_orderable_db_instance_options", {"OrderableDBInstanceOptions": []})
    known = {"Engine": "aurora-mysql", "EngineVersion": version, "DBInstanceClass": "db.r6g.large"}
    rds.add_response("describe_orderable_db_instance_options", {"OrderableDBInstanceOptions": [known]})
    report = preflight(LabConfig(), backend)
    engine = row(report, "engine and DB class")
    assert engine.status == FAIL and "db.t4g.medium cannot run" in engine.detail
    assert report.exit_code == 1


def test_an_exhausted_quota_is_a_fail_row(backend):
    quotas = stubbed(backend, "service-quotas")
    # the class check asks for each quota in its order: VPCs, gateways, clusters, DB instances, vCPUs, EIPs
    for code, value in (
        ("L-F678F1CE", 1.0), ("L-A4707A72", 5.0), ("L-952B80B8", 40.0), ("L-7B6409FD", 40.0),
        ("L-1216C47A", 32.0), ("L-0263D0A3", 5.0),
    ):  # fmt: skip
        quotas.add_response("get_service_quota", {"Quota": {"QuotaCode": code, "Value": value}})
    report = preflight(LabConfig(), backend)  # moto's default VPC uses the only VPC the quota allows
    quota = row(report, "quotas")
    assert quota.status == FAIL and "VPCs per region: needs 1, 0 left" in quota.detail
    assert "vpc = 'default'" in quota.fix
    assert report.exit_code == 1


def test_the_cli_prints_lines_exits_1_on_a_fail_and_speaks_json(backend, monkeypatch, capsys):
    monkeypatch.setattr(options, "backend_for", lambda config: backend)
    assert main(["preflight"]) == 0
    out = capsys.readouterr().out
    assert "ready" in out.splitlines()[0] and "PASS  credentials" in out and "WARN  permissions" in out
    queue_simulation(backend, lambda a: "implicitDeny" if a == "ec2:DescribeVpcs" else "allowed")
    assert main(["preflight", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and {"check", "status", "detail", "fix"} <= set(data["rows"][0])


def test_apply_on_a_preflight_backend_stops_on_a_fail_row_before_creating_anything(backend, monkeypatch):
    monkeypatch.setattr(backend, "preflight_before_apply", True, raising=False)
    monkeypatch.setattr(backend, "session_plugin", lambda: None)  # the plugin is missing
    calls = changing_calls(backend)
    with pytest.raises(PreflightFailed) as caught:
        apply(LabConfig(), backend, stream=io.StringIO())
    assert "session-manager-plugin" in caught.value.message and "nothing was created" in caught.value.message
    assert calls == []


def test_apply_on_a_preflight_backend_goes_ahead_when_it_passes(backend, monkeypatch):
    monkeypatch.setattr(backend, "preflight_before_apply", True, raising=False)
    out = io.StringIO()
    apply(LabConfig(), backend, stream=out, only="network")
    assert "preflight of auroralab/learner1" in out.getvalue() and ": ready" in out.getvalue()


def test_apply_launches_a_graviton_type_on_the_arm64_ami(backend):
    """The x86_64 AMI was hard-coded: RunInstances refuses it for an arm64-only type such as t4g.micro."""
    ids = apply(LabConfig(instance_type="t4g.micro"), backend, stream=io.StringIO(), only="compute").ids
    ec2, ssm = backend.client("ec2"), backend.client("ssm")
    [reservation] = ec2.describe_instances(InstanceIds=[ids["instance"]])["Reservations"]
    arm64 = ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64")
    assert reservation["Instances"][0]["ImageId"] == arm64["Parameter"]["Value"]


@pytest.mark.parametrize(
    ("code", "check_words"),
    [
        ("OptInRequired", "is not enabled in this account"),
        ("AuthFailure", "did not accept your credentials"),
        ("UnauthorizedOperation", "ec2:DescribeRegions"),
    ],
)
def test_the_region_row_names_the_real_cause(backend, code, check_words):
    """AuthFailure and UnauthorizedOperation were reported as "region not enabled"."""
    ec2 = stubbed(backend, "ec2")
    ec2.add_client_error("describe_regions", service_error_code=code, service_message="m")
    report = preflight(LabConfig(), backend)
    region = row(report, "region")
    assert region.status == FAIL and check_words in region.detail


def test_a_bad_flag_exits_2_before_any_call(monkeypatch, capsys):
    def no_backend(config):
        raise AssertionError("no backend may be made for a bad input")

    monkeypatch.setattr(options, "backend_for", no_backend)
    assert main(["preflight", "--readers", "99"]) == 2
    assert "readers" in capsys.readouterr().err
