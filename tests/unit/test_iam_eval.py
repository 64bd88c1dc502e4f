"""The strict IAM evaluator (tests/support/iam_eval.py) against the IAM User Guide's documented semantics.

If the evaluator were lenient, the ABAC matrix could pass on policies AWS would enforce differently; each case
here is one rule of "Policy evaluation logic", "Condition operators" or "Policy variables".
"""

from __future__ import annotations

from typing import Any

from support.iam_eval import Principal, Request, evaluate


def allow(action: Any = "*", resource: Any = "*", condition: dict | None = None, **extra: Any) -> dict:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource, **extra}
    if condition:
        statement["Condition"] = condition
    return statement


def who(*statements: dict, boundary: list[dict] | None = None, tags: dict | None = None) -> Principal:
    return Principal(
        arn="arn:aws:iam::111122223333:user/ada", account="111122223333",
        policies=[{"Version": "2012-10-17", "Statement": list(statements)}],
        boundary={"Version": "2012-10-17", "Statement": boundary} if boundary is not None else None,
        tags=tags or {}, username="ada", userid="AIDAEXAMPLE",
    )  # fmt: skip


def test_default_deny_allow_and_explicit_deny_wins() -> None:
    assert not evaluate(who(), Request("ec2:DescribeVpcs", "*")).allowed
    assert evaluate(who(allow("ec2:Describe*")), Request("ec2:DescribeVpcs", "*")).allowed
    denied = who(allow("ec2:*"), {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"})
    decision = evaluate(denied, Request("ec2:TerminateInstances", "arn:aws:ec2:r:1:instance/i-1"))
    assert not decision.allowed and "explicitly denied" in decision.reason


def test_actions_ignore_case_resources_do_not() -> None:
    principal = who(allow("EC2:describevpcs", "arn:aws:s3:::Bucket/*"))
    assert evaluate(principal, Request("ec2:DescribeVpcs", "arn:aws:s3:::Bucket/x")).allowed
    assert not evaluate(principal, Request("ec2:DescribeVpcs", "arn:aws:s3:::bucket/x")).allowed


def test_not_action_and_not_resource() -> None:
    principal = who({"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:ec2:*:*:vpc/vpc-secret"})
    assert evaluate(principal, Request("ec2:DeleteVpc", "arn:aws:ec2:r:1:vpc/vpc-1")).allowed
    assert not evaluate(principal, Request("iam:CreateUser", "arn:aws:iam::1:user/x")).allowed
    assert not evaluate(principal, Request("ec2:DeleteVpc", "arn:aws:ec2:r:1:vpc/vpc-secret")).allowed


def test_policy_variables_and_a_variable_without_a_value() -> None:
    statement = allow("ec2:TerminateInstances", "*",
                      {"StringEquals": {"aws:ResourceTag/owner": "${aws:PrincipalTag/owner}"}})  # fmt: skip
    mine = Request("ec2:TerminateInstances", "arn:i", {"aws:ResourceTag/owner": "ada"})
    assert evaluate(who(statement, tags={"owner": "ada"}), mine).allowed
    assert not evaluate(who(statement, tags={"owner": "grace"}), mine).allowed
    assert not evaluate(who(statement), mine).allowed, "no principal tag: the condition cannot hold"
    in_path = allow("iam:GetRole", "arn:aws:iam::*:role/${aws:username}/*")
    assert evaluate(who(in_path), Request("iam:GetRole", "arn:aws:iam::1:role/ada/r")).allowed
    assert not evaluate(who(in_path), Request("iam:GetRole", "arn:aws:iam::1:role/grace/r")).allowed
    starry = who(allow("iam:GetRole", "arn:aws:iam::*:role/${aws:PrincipalTag/team}/*"), tags={"team": "*"})
    assert not evaluate(starry, Request("iam:GetRole", "arn:aws:iam::1:role/other/r")).allowed, "a tag's * is literal"


def test_missing_keys_if_exists_null_and_negated_operators() -> None:
    negated = who(allow(condition={"StringNotEquals": {"aws:ResourceTag/owner": "grace"}}))
    assert not evaluate(negated, Request("a:B", "*")).allowed, "a missing key makes even a negated operator false"
    if_exists = who(allow(condition={"StringEqualsIfExists": {"aws:ResourceTag/owner": "ada"}}))
    assert evaluate(if_exists, Request("a:B", "*")).allowed
    assert not evaluate(if_exists, Request("a:B", "*", {"aws:ResourceTag/owner": "grace"})).allowed
    null = who(allow(condition={"Null": {"aws:RequestTag/owner": "false"}}))
    assert evaluate(null, Request("a:B", "*", {"aws:RequestTag/owner": "x"})).allowed
    assert not evaluate(null, Request("a:B", "*")).allowed
    keys_any_case = who(allow(condition={"StringEquals": {"AWS:RequestTag/Owner": "x"}}))
    assert evaluate(keys_any_case, Request("a:B", "*", {"aws:requesttag/owner": "x"})).allowed


def test_several_keys_and_operators_all_hold_values_are_alternatives() -> None:
    principal = who(allow(condition={
        "StringEquals": {"k1": ["a", "b"], "k2": "c"}, "StringLike": {"k3": "x-*"}}))  # fmt: skip
    assert evaluate(principal, Request("a:B", "*", {"k1": "b", "k2": "c", "k3": "x-1"})).allowed
    assert not evaluate(principal, Request("a:B", "*", {"k1": "b", "k2": "c", "k3": "y-1"})).allowed
    assert not evaluate(principal, Request("a:B", "*", {"k1": "z", "k2": "c", "k3": "x-1"})).allowed


def test_set_operators() -> None:
    only = who(allow(condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}))
    assert evaluate(only, Request("a:B", "*", {"aws:TagKeys": ["a"]})).allowed
    assert not evaluate(only, Request("a:B", "*", {"aws:TagKeys": ["a", "c"]})).allowed
    anyone = who(allow(condition={"ForAnyValue:StringEquals": {"aws:TagKeys": "c"}}))
    assert evaluate(anyone, Request("a:B", "*", {"aws:TagKeys": ["a", "c"]})).allowed


def test_a_permissions_boundary_caps_what_the_identity_policies_allow() -> None:
    capped = who(allow(), boundary=[allow("ssm:*")])
    assert evaluate(capped, Request("ssm:GetParameter", "*")).allowed
    decision = evaluate(capped, Request("iam:CreateUser", "*"))
    assert not decision.allowed and "boundary" in decision.reason
    assert not evaluate(who(allow("iam:GetRole"), boundary=[allow()]), Request("iam:CreateUser", "*")).allowed


def test_arn_operators_take_wildcards() -> None:
    principal = who(allow(condition={"ArnLike": {"iam:PolicyARN": "arn:aws:iam::*:policy/labkit/*"}}))
    assert evaluate(principal, Request("a:B", "*", {"iam:PolicyARN": "arn:aws:iam::1:policy/labkit/p"})).allowed
    assert not evaluate(principal, Request("a:B", "*", {"iam:PolicyARN": "arn:aws:iam::aws:policy/Admin"})).allowed
