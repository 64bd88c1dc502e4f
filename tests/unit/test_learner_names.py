"""Which learner names collide, derived from the shipped policies (issue 25, item 11).

A learner's policies scope resources by patterns built from their identity (`${aws:username}`, `${aws:userid}`,
`${aws:PrincipalTag/labkit:lab}`, `...:learner}`). Two learners collide when one's resolved pattern matches a
resource named from the other's identity. This file resolves every ARN pattern of the learner policies and the
learner boundary for pairs of names, fills each wildcard of the other's pattern with an id such as AWS makes
(a session id is `USERNAME-` and 17 hex digits), and asserts that `name_clash` refuses exactly the pairs that
meet: a new prefix pattern in a policy (say `cluster:${lab}-${learner}*`) fails here. The tag conditions
(`aws:ResourceTag/labkit:lab` equal to the principal's tag, and the learner's likewise) are exact and ANDed,
so they meet only for the same lab and learner; they are not ARNs and are left out.

The IAM evaluator (tests/support/iam_eval.py) shows the collision is real: learner `ann`'s policies end the
sessions of learner `ann-2`.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from typing import Any

import pytest
from support.iam_eval import Principal, Request, evaluate

from labkit.aws.policies import LEARNER_BOUNDARY, LEARNER_POLICIES, render
from labkit.aws.tags import TAG_LAB, TAG_LEARNER
from labkit.classroom.learners import name_clash, user_name

ACCOUNT = "111122223333"
SESSION_SUFFIX = "0a1b2c3d4e5f60718"  # what Session Manager appends to the user name: 17 hex digits
NAMES = [
    ("class1", "ann"), ("class1", "ann-2"), ("class1", "anna"), ("class1", "ann-x"), ("class1-ann", "x"),
    ("class2", "ann"), ("a", "b"), ("a", "b-c"), ("a-b", "c"), ("a-b", "x"), ("a", "bc"),
]  # fmt: skip
VARIABLES = ("${aws:username}", "${aws:userid}", "${aws:PrincipalTag/labkit:lab}", "${aws:PrincipalTag/labkit:learner}")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def identity_patterns() -> set[str]:
    """Every ARN in the learner policies and boundary (resources and condition values) built from the identity."""
    found = set()
    for stem in (*LEARNER_POLICIES, LEARNER_BOUNDARY):
        for statement in render(stem)["Statement"]:
            for key in ("Resource", "NotResource", "Condition"):
                found |= {
                    s for s in _strings(statement.get(key)) if s.startswith("arn:") and any(v in s for v in VARIABLES)
                }
    return found


def _resolve(pattern: str, lab: str, learner: str) -> str:
    userid = "AIDA" + format(abs(hash((lab, learner))) % 10**17, "017d")  # unique ids: one length, never a prefix
    values = {"${aws:username}": user_name(lab, learner), "${aws:userid}": userid,
              "${aws:PrincipalTag/labkit:lab}": lab, "${aws:PrincipalTag/labkit:learner}": learner}  # fmt: skip
    return re.sub(r"\$\{[^}]+\}", lambda m: values[m.group(0)], pattern).replace("*:*:", f"us-east-1:{ACCOUNT}:")


def meets(first: tuple[str, str], second: tuple[str, str]) -> list[str]:
    """The patterns by which `first`'s policies match a resource named from `second`'s identity."""
    return [
        pattern
        for pattern in sorted(identity_patterns())
        if fnmatch.fnmatchcase(
            _resolve(pattern, *second).replace("*", SESSION_SUFFIX).replace("?", "x"), _resolve(pattern, *first)
        )
    ]


def test_the_policies_scope_by_identity_somewhere():
    """The derivation below can fail: the session patterns are among what it reads."""
    assert "arn:aws:ssm:*:*:session/${aws:username}-*" in identity_patterns()
    assert meets(("class1", "ann"), ("class1", "ann-2")) == ["arn:aws:ssm:*:*:session/${aws:username}-*"]


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(NAMES, 2)), ids=str)
def test_name_clash_refuses_exactly_the_pairs_the_policies_let_meet(first, second):
    collide = bool(meets(first, second) or meets(second, first))
    refused = bool(name_clash(user_name(*first), {user_name(*second): f"lab {second[0]}, learner {second[1]}"}))
    assert refused == collide, (first, second, meets(first, second), meets(second, first))


def test_the_evaluator_shows_learner_ann_can_end_learner_ann_2s_sessions():
    policies = [render(stem) for stem in LEARNER_POLICIES]
    ann = Principal(
        arn=f"arn:aws:iam::{ACCOUNT}:user/labkit/class1/class1-ann", account=ACCOUNT, policies=policies,
        boundary=render(LEARNER_BOUNDARY), tags={TAG_LAB: "class1", TAG_LEARNER: "ann"}, username="class1-ann",
        userid="AIDA00000000000000001",
    )  # fmt: skip

    def may_end(session: str) -> bool:
        arn = f"arn:aws:ssm:us-east-1:{ACCOUNT}:session/{session}-{SESSION_SUFFIX}"
        return evaluate(ann, Request("ssm:TerminateSession", arn)).allowed

    assert may_end("class1-ann") and not may_end("class1-anna") and not may_end("class1-bob")
    assert may_end("class1-ann-2"), "the collision the onboarding refuses"
