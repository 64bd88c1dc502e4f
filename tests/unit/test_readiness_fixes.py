"""Readiness fixes are actions the learner policy allows, with ARNs in the region's partition (issue 15, items
7 and 8). Before, a stopped instance or a missing profile was answered with `start-instances` and
`associate-iam-instance-profile`, which the learner policy does not grant, and the SSM policy's ARN was
always `arn:aws:`, wrong in China and GovCloud."""

from __future__ import annotations

import re

import pytest
from test_tunnel_aws import BREAKAGES, lab  # noqa: F401 (the lab fixture)

from labkit.access.tunnel import diagnose
from labkit.access.tunnel.readiness import SSM_POLICY, _policy, ssm_policy_arn
from labkit.aws.policies import granted_actions

COMMAND = re.compile(r"\baws ([a-z0-9-]+) ([a-z0-9-]+)")


def first_action(fix: str) -> str:
    """The IAM action of the first `aws SERVICE COMMAND` in a fix (the one the learner is told to run)."""
    service, command = COMMAND.search(fix).groups()  # type: ignore[union-attr]
    return f"{service}:{''.join(part.capitalize() for part in command.split('-'))}"


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_the_fix_a_learner_is_told_to_run_is_granted_by_the_learner_policy(lab, breakage):  # noqa: F811
    how, _, _ = BREAKAGES[breakage]
    how(lab)
    fix = diagnose(lab.backend, lab.instance_id).problems[0].fix
    assert first_action(fix) in granted_actions(), fix


@pytest.mark.parametrize(
    ("region", "partition"), [("us-east-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]
)
def test_the_ssm_policy_arn_follows_the_partition(region, partition):
    assert ssm_policy_arn(region) == f"arn:{partition}:iam::aws:policy/{SSM_POLICY}"


def test_a_china_region_role_is_checked_and_fixed_with_the_china_arn():
    class Iam:
        def list_attached_role_policies(self, RoleName):
            return {"AttachedPolicies": [{"PolicyArn": f"arn:aws-cn:iam::aws:policy/{SSM_POLICY}"}]}

    class ChinaBackend:
        region = "cn-north-1"

        def client(self, service):
            return Iam()

    assert _policy(ChinaBackend(), {"RoleName": "r"}).ok, "the aws-cn ARN is the attached SSM policy there"
    Iam.list_attached_role_policies = lambda self, RoleName: {"AttachedPolicies": []}  # type: ignore[method-assign]
    check = _policy(ChinaBackend(), {"RoleName": "r"})
    assert not check.ok and f"--policy-arn arn:aws-cn:iam::aws:policy/{SSM_POLICY}" in check.fix
