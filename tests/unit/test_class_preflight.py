"""A class's learners run the preflight in a busy account, each under the learner policies as IAM evaluates them.

Issue 25, item 1: learners could not read Service Quotas, so the preflight fell back to AWS's documented defaults
(5 VPCs, 5 standard vCPUs) and counted the whole account's use: once other labs or other teams' VPCs and instances
existed, every learner without a lab got a fail and `apply` stopped, however high the instructor had raised the
quota. Here three learners (onboarded by an instructor after the administrator's setup) share an account that
already holds four other VPCs besides the default one and two other t3.micro instances, with the VPC, gateway and
vCPU quotas raised for the class. Every request goes through the strict IAM evaluator (support/iam_requests.py)
with the real policies, and iam:SimulatePrincipalPolicy is answered from them (support/simulator.py).
"""

from __future__ import annotations

import configparser
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.backends import InProcessBackend
from support.iam_requests import StrictIam, World, user_principal
from support.simulator import Simulator
from support.strict import UserBoundaries

from labkit.aws.backend import FAKE_CREDENTIALS, Backend
from labkit.aws.policies import render
from labkit.classroom.learners import learners_create
from labkit.classroom.setup import class_setup
from labkit.config import LabConfig
from labkit.lab.preflight import FAIL, PASS, WARN, preflight, require_preflight
from labkit.lab.resources.compute import AMI_PARAMETER

REGION, LAB, NAMES = "us-east-1", "class3", ("ada", "grace", "linus")
PLUGIN = Path(__file__).resolve().parents[1] / "support" / "fakes" / "session-manager-plugin"
# What the instructor had AWS raise for the class (Service Quotas, applied values).
RAISED = {("vpc", "L-F678F1CE"): 50.0, ("vpc", "L-A4707A72"): 50.0, ("ec2", "L-1216C47A"): 64.0}
QUOTA_READS = {"servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota",
               "ec2:DescribeAccountAttributes", "rds:DescribeAccountAttributes"}  # fmt: skip


class RaisedQuotas:
    """Service Quotas answering the raised values (moto knows only the VPC defaults); other codes go on to moto."""

    def install(self, events: Any) -> None:
        events.register("before-parameter-build.service-quotas.GetServiceQuota", self._keep)
        events.register("before-call.service-quotas.GetServiceQuota", self._answer)

    @staticmethod
    def _keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["raised"] = RAISED.get((params["ServiceCode"], params["QuotaCode"]))

    @staticmethod
    def _answer(context: dict[str, Any], **_: Any) -> Any:
        value = context.get("raised")
        if value is None:
            return None
        from types import SimpleNamespace

        return SimpleNamespace(status_code=200, headers={}), {"Quota": {"Value": value}}


@dataclass
class Learner:
    name: str
    backend: Backend
    strict: StrictIam
    simulator: Simulator
    principal: Any = None  # her policies as IAM holds them, read once (forget() after changing them)

    def forget(self) -> None:
        self.principal = None
        self.simulator.forget()

    @property
    def config(self) -> LabConfig:
        return LabConfig(lab=LAB, learner=self.name)

    def preflight(self) -> Any:
        with self.strict.enforcing(self.backend):
            return preflight(self.config, self.backend)


@dataclass
class Account:
    admin: Callable[[str], Any]
    world: World
    learners: dict[str, Learner]


@pytest.fixture(scope="module")
def account(fast_moto: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    from moto import mock_aws

    patch = pytest.MonkeyPatch()
    patch.setenv("LABKIT_HOME", str(tmp_path_factory.mktemp("labkit-home")))
    boundaries = UserBoundaries()
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        session = boto3.Session(region_name=REGION, **FAKE_CREDENTIALS)
        boundaries.install(session.events)
        clients: dict[str, Any] = {}

        def admin(service: str) -> Any:
            return clients.setdefault(service, session.client(service))

        world = World(admin, REGION, admin("sts").get_caller_identity()["Account"])
        setup_backend = InProcessBackend.make(REGION)
        boundaries.install(setup_backend.session().events)
        class_setup(backend=setup_backend, yes=True)
        onboarded = learners_create(
            lab=LAB, names=",".join(NAMES), backend=setup_backend, yes=True,
            credentials_dir=tmp_path_factory.mktemp("keys"),
        )  # fmt: skip
        _busy(admin)
        learners = {}
        for row in onboarded.rows:
            parser = configparser.ConfigParser()
            parser.read(row.credentials_file)
            keys = {k: parser["labkit"][k] for k in ("aws_access_key_id", "aws_secret_access_key")}
            backend = InProcessBackend.make(REGION, keys)
            boundaries.install(backend.session().events)
            simulator = Simulator(admin).install(backend.session().events)
            RaisedQuotas().install(backend.session().events)
            patch.setattr(backend, "session_plugin", lambda: [str(PLUGIN)])
            learner = Learner(row.learner, backend, None, simulator)  # type: ignore[arg-type]
            learner.strict = StrictIam(world, lambda who=learner, name=row.user: _principal(who, admin, name))
            learners[row.learner] = learner
        yield Account(admin, world, learners)
    patch.undo()


def _principal(learner: Learner, admin: Callable[[str], Any], name: str) -> Any:
    if learner.principal is None:
        learner.principal = user_principal(admin, name)
    return learner.principal


def _busy(admin: Callable[[str], Any]) -> None:
    """Other teams' things in the account: four VPCs besides the default one, two running t3.micro instances."""
    ec2 = admin("ec2")
    for index in range(4):
        ec2.create_vpc(CidrBlock=f"10.{100 + index}.0.0/16")
    ami = admin("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=2, MaxCount=2)


def _row(report: Any, check: str) -> Any:
    return next(row for row in report.rows if row.check == check)


def test_every_learner_is_ready_against_the_quotas_the_instructor_raised(account: Account) -> None:
    for name, learner in account.learners.items():
        report = learner.preflight()
        denied = [d for d in learner.strict.log if not d.decision.allowed]
        assert not denied, [f"{d.operation} {d.request.resource}: {d.decision.reason}" for d in denied]
        quotas = _row(report, "quotas")
        assert quotas.status != FAIL, quotas
        assert "VPCs per region" not in quotas.detail or "Service Quotas" in quotas.detail
        assert _row(report, "permissions").status == PASS, _row(report, "permissions")
        assert _row(report, "class guardrails").status == PASS
        assert report.ok, f"{name}: {report}"


def test_a_limit_no_source_confirmed_is_a_warn_never_a_fail(account: Account) -> None:
    """With the last round's learner-read (no Service Quotas, no account attributes) the limits are AWS's
    documented defaults: 5 VPCs (5 in use), 5 vCPUs (4 in use); the lab needs one more VPC and two vCPUs. That is a
    warn that says the limits were assumed, and apply goes ahead; it was a fail that stopped every learner."""
    iam = account.admin("iam")
    arn = next(
        p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"] if p["PolicyName"] == "labkit-learner-read"
    )
    current = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    last_round = render("learner-read")
    last_round["Statement"][0]["Action"] = sorted(set(last_round["Statement"][0]["Action"]) - QUOTA_READS)
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(last_round), SetAsDefault=True)
    try:
        for learner in account.learners.values():
            learner.forget()
            report = learner.preflight()
            quotas = _row(report, "quotas")
            assert quotas.status == WARN, quotas
            assert "no source confirmed" in quotas.detail and "VPCs per region: needs 1, 0 left of 5" in quotas.detail
            assert "On-Demand standard vCPUs: needs 2, 1 left of 5" in quotas.detail
            assert any(d.request.action == "servicequotas:GetServiceQuota" and not d.decision.allowed
                       for d in learner.strict.log), "the quota read was denied, as the old policy would"  # fmt: skip
            with learner.strict.enforcing(learner.backend):
                require_preflight(learner.config, _on_aws(learner.backend))  # raises PreflightFailed on a fail
    finally:
        iam.set_default_policy_version(PolicyArn=arn, VersionId=current)
        for learner in account.learners.values():
            learner.forget()


def _on_aws(backend: Backend) -> Backend:
    backend.preflight_before_apply = True  # type: ignore[misc]  # as the aws backend's attribute says
    return backend


def test_a_confirmed_shortage_still_fails(account: Account) -> None:
    """The control: a limit Service Quotas confirms and the account exhausts stops the lab before anything exists."""
    learner = account.learners["ada"]
    quiet = io.StringIO()
    RAISED[("vpc", "L-F678F1CE")] = 5.0  # not raised after all: 5 VPCs in use of 5
    try:
        report = learner.preflight()
    finally:
        RAISED[("vpc", "L-F678F1CE")] = 50.0
    quotas = _row(report, "quotas")
    assert quotas.status == FAIL and "VPCs per region: needs 1, 0 left (Service Quotas (applied" in quotas.detail
    assert "vpc = 'default'" in quotas.fix and not quiet.getvalue()
