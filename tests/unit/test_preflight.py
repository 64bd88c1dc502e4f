"""`labkit preflight` / labkit.preflight(): read-only, one row per check, the right row and exit code.

Against in-process moto with the strict layer (its engine catalog). The permission rows run as a class learner
onboarded the way `labkit class setup` and `labkit class learners create` do it, with iam:SimulatePrincipalPolicy
answered from the account's real policies (support/simulator.py: moto has no simulator); botocore's Stubber
stands in for what neither answers: a class not orderable, a quota exhausted, a caller who may not simulate.
"""

from __future__ import annotations

import configparser
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from support.backends import InProcessBackend
from support.simulator import Simulator
from support.strict import install_strict_layer

from labkit.aws.actions import WORKBOOK_ACTIONS
from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.classroom.learners import learners_create
from labkit.classroom.setup import class_setup
from labkit.cli import options
from labkit.cli.main import main
from labkit.config import LabConfig
from labkit.lab.apply import apply
from labkit.lab.permissions import principal_arn
from labkit.lab.preflight import FAIL, PASS, WARN, PreflightFailed, preflight

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


# ----- a class learner, simulated -----


@dataclass
class Learner:
    backend: Any
    config: LabConfig
    simulator: Simulator
    user: str


def _admin(strict_backend) -> Any:
    return lambda service: strict_backend.client(service)


@pytest.fixture
def learner(strict_backend, monkeypatch, tmp_path) -> Learner:
    """ada of lab class1, onboarded as a class is (the administrator's setup, then the instructor's create), with her
    own keys, the strict layer and a simulator answering from the account's policies."""
    class_setup(backend=strict_backend, yes=True)
    report = learners_create(lab="class1", names="ada", backend=strict_backend, credentials_dir=tmp_path, yes=True)
    parser = configparser.ConfigParser()
    parser.read(report.rows[0].credentials_file)
    keys = {k: parser["labkit"][k] for k in ("aws_access_key_id", "aws_secret_access_key")}
    backend = InProcessBackend.make(strict_backend.region, keys)
    simulator = Simulator(_admin(strict_backend)).install(backend.session().events)
    backend.strict = install_strict_layer(backend, user_boundaries=strict_backend.strict.user_boundaries)
    monkeypatch.setattr(backend, "session_plugin", lambda: [str(PLUGIN)])
    return Learner(backend, LabConfig(lab="class1", learner="ada"), simulator, "class1-ada")


def test_a_class_learner_is_ready_under_the_learner_policies(learner):
    report = preflight(learner.config, learner.backend)
    permissions, guardrails = row(report, "permissions"), row(report, "class guardrails")
    assert permissions.status == PASS, permissions
    assert f"all {len(WORKBOOK_ACTIONS)} actions the workbook needs are allowed" in permissions.detail
    assert guardrails.status == PASS and "t3.micro" in guardrails.detail and "db.t4g.medium" in guardrails.detail
    assert [r.check for r in report.rows].index("class guardrails") == 3, "right after the permissions"
    assert report.ok, report


def test_the_simulation_carries_the_learners_own_tags_and_the_labs_resources(learner):
    """Issue 25, item 5: every action the workbook records, each on the kinds of resource the policies grant it
    on, with the learner's tags as aws:PrincipalTag context (the simulator does not read them from the user)."""
    preflight(learner.config, learner.backend)
    calls = learner.simulator.calls
    asked = {action for call in calls for action in call["ActionNames"]}
    assert asked == WORKBOOK_ACTIONS
    contexts = [{e["ContextKeyName"]: e["ContextKeyValues"] for e in call["ContextEntries"]} for call in calls]
    assert all(c["aws:PrincipalTag/labkit:lab"] == ["class1"] and c["aws:PrincipalTag/labkit:learner"] == ["ada"]
               for c in contexts)  # fmt: skip
    launches = [c for call, c in zip(calls, contexts, strict=True) if "ec2:RunInstances" in call["ActionNames"]]
    assert launches and all(c.get("ec2:InstanceType") == ["t3.micro"] for c in launches)
    others = [c for call, c in zip(calls, contexts, strict=True) if "ec2:RunInstances" not in call["ActionNames"]]
    assert not any("ec2:InstanceType" in c for c in others), "only a launch carries an instance type"
    resources = {arn for call in calls for arn in call.get("ResourceArns", [])}
    assert "arn:aws:ssm:us-east-1:123456789012:session/class1-ada-labkit" in resources
    assert "arn:aws:iam::123456789012:role/labkit/class1/ada/labkit" in resources
    assert all(call["PolicySourceArn"].endswith(":user/labkit/class1/class1-ada") for call in calls)


def _replace_policy(strict_backend, stem: str, change) -> None:
    """As the administrator: make `change(document)` the default version of labkit-<stem> (as if the account still
    had another labkit's policies)."""
    from labkit.aws.policies import render

    iam = strict_backend.client("iam")
    arn = next(p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"] if p["PolicyName"] == f"labkit-{stem}")
    document = render(stem)
    change(document)
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True)


def test_an_account_with_older_policies_fails_naming_what_they_lack(learner, strict_backend):
    """The last round's learner-compute had no ssmmessages:OpenDataChannel or ssm:ResumeSession: the preflight
    simulated only what the policy files named, so it could not see that; it simulates the workbook's own."""

    def last_round(document: dict) -> None:
        sessions = next(s for s in document["Statement"] if s["Sid"] == "OwnSessionsOnly")
        sessions["Action"] = ["ssm:TerminateSession"]

    _replace_policy(strict_backend, "learner-compute", last_round)
    permissions = row(preflight(learner.config, learner.backend), "permissions")
    assert permissions.status == FAIL
    assert "ssm:ResumeSession" in permissions.detail and "ssmmessages:OpenDataChannel" in permissions.detail
    assert "labkit-learner-compute" in permissions.fix and "labkit class setup --yes" in permissions.fix


def test_an_explicit_deny_fails_and_says_so(learner, strict_backend):
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "ec2:DescribeVpcs", "Resource": "*"}]}
    strict_backend.client("iam").put_user_policy(
        UserName=learner.user, PolicyName="no", PolicyDocument=json.dumps(deny)
    )
    permissions = row(preflight(learner.config, learner.backend), "permissions")
    assert permissions.status == FAIL and "1 explicitly denied" in permissions.detail
    assert "ec2:DescribeVpcs" in permissions.detail and "remove the deny" in permissions.fix


def test_a_config_outside_the_class_guardrails_fails_before_anything_is_created(learner):
    """Issue 25, item 9: the instructor allowed ada t3.micro and db.t4g.medium; a lab of larger classes is
    refused by the policies (RunInstances, CreateDBInstance), and the preflight says which setting to change."""
    big = LabConfig(lab="class1", learner="ada", instance_type="m5.large", db_instance_class="db.r6g.large")
    report = preflight(big, learner.backend)
    guardrails, permissions = row(report, "class guardrails"), row(report, "permissions")
    assert guardrails.status == FAIL and "instance_type = 't3.micro'" in guardrails.detail
    assert "db_instance_class = 'db.t4g.medium'" in guardrails.fix
    assert permissions.status == FAIL and "ec2:RunInstances" in permissions.detail
    assert "rds:CreateDBInstance" in permissions.detail
    assert not report.ok


def test_a_config_for_another_learner_fails_on_its_tags(learner):
    report = preflight(LabConfig(lab="class1", learner="grace"), learner.backend)
    assert row(report, "class guardrails").status == FAIL
    assert "learner = 'ada'" in row(report, "class guardrails").detail


def test_a_caller_who_may_not_simulate_gets_a_warn_that_says_so(backend):
    sts = stubbed(backend, "sts")
    sts.add_response("get_caller_identity", {"Account": "123456789012", "Arn": USER_ARN, "UserId": "AIDAADA"})
    iam = stubbed(backend, "iam")
    iam.add_client_error("simulate_principal_policy", service_error_code="AccessDenied", service_message="no")
    permissions = row(preflight(LabConfig(), backend), "permissions")
    assert permissions.status == WARN and "iam:SimulatePrincipalPolicy" in permissions.detail


def test_an_assumed_role_is_simulated_as_its_role():
    session = "arn:aws:sts::123456789012:assumed-role/LabLearner/ada@example.com"
    assert principal_arn(session) == "arn:aws:iam::123456789012:role/LabLearner"
    assert principal_arn("arn:aws:iam::123456789012:user/labkit/class1/class1-ada").endswith(
        ":user/labkit/class1/class1-ada"
    )
    assert principal_arn("arn:aws:iam::123456789012:root") is None


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
    monkeypatch.setattr(backend, "session_plugin", lambda: None)  # the plugin is missing: a fail row
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
