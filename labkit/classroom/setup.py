"""An account administrator's one-time setup for a class: every policy labkit ships, created where only an
administrator writes.

    labkit class setup                           # a dry run: what would be created or brought up to date
    labkit class setup --instructor NAME --yes   # create them, and give the IAM user NAME the instructor policies

The learner policies, the two permissions boundaries (one for the roles learners create, one for the learner
users themselves) and the instructor's policies become customer managed policies `labkit-<file>` under the IAM
path /labkit/, rendered for the region's partition. The instructor policy holds no `iam:CreatePolicy` or
`iam:CreatePolicyVersion`: an instructor creates learner users only with the learner boundary and attaches only
the four learner policies, so onboarding needs no power to write a policy (policies/README.md). Run it again
after updating labkit: a policy whose text changed gets a new default version (IAM keeps five; the oldest
non-default one goes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from labkit.aws.backend import Backend
from labkit.aws.policies import INSTRUCTOR_POLICIES, POLICY_PATH, SETUP_POLICIES, policy_arn, policy_name, render
from labkit.aws.regions import partition_of
from labkit.classroom.scan import class_backends
from labkit.errors import LabkitError

MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy
SETUP_COMMAND = "labkit class setup --yes"
MISSING, UP_TO_DATE, DIFFERS = "missing", "up to date", "differs from this labkit's"


@dataclass
class SetupReport:
    """What the setup did (or would do) to each policy and to the instructor."""

    dry_run: bool
    region: str
    policies: dict[str, str] = field(default_factory=dict)  # managed policy name -> what happened
    instructor: str | None = None
    attached: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "region": self.region, "policies": self.policies,
                "instructor": self.instructor, "attached": self.attached}  # fmt: skip

    def __str__(self) -> str:
        head = "dry run: " if self.dry_run else ""
        lines = [f"{head}class setup in the partition of {self.region}"]
        lines += [f"policy {name}: {what}" for name, what in self.policies.items()]
        if self.instructor:
            verb = "would attach" if self.dry_run else "attached"
            lines.append(f"instructor {self.instructor}: {verb} {', '.join(self.attached) or 'nothing new'}")
        if self.dry_run:
            lines.append("nothing was changed: run again with --yes (yes=True) to do it")
        return "\n".join(lines)

    __repr__ = __str__


def _iam(backend: Backend) -> Any:
    return backend.client("iam")


def labkit_policies(backend: Backend) -> dict[str, dict[str, Any]]:
    """The managed policies under /labkit/, by name (found by listing: their ARNs are the account's to say)."""
    pages = backend.client("iam").get_paginator("list_policies").paginate(Scope="Local", PathPrefix=POLICY_PATH)
    return {policy["PolicyName"]: policy for page in pages for policy in page["Policies"]}


def _document(raw: Any) -> Any:
    return json.loads(unquote(raw)) if isinstance(raw, str) else raw


def policy_state(backend: Backend, stem: str, partition: str, existing: dict[str, dict[str, Any]]) -> str:
    """MISSING, UP_TO_DATE or DIFFERS: the account's default version of `labkit-<stem>` against the file."""
    current = existing.get(policy_name(stem))
    if current is None:
        return MISSING
    version = backend.client("iam").get_policy_version(PolicyArn=current["Arn"], VersionId=current["DefaultVersionId"])
    return UP_TO_DATE if _document(version["PolicyVersion"]["Document"]) == render(stem, partition) else DIFFERS


def ensure_policy(backend: Backend, stem: str, partition: str, existing: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """Create `labkit-<stem>` from the shipped document, or make the document its default version.
    Returns its ARN and what was done."""
    iam, document = _iam(backend), render(stem, partition)
    current = existing.get(policy_name(stem))
    if current is None:
        made = iam.create_policy(
            PolicyName=policy_name(stem), Path=POLICY_PATH, PolicyDocument=json.dumps(document),
            Description=f"labkit: labkit/data/policies/{stem}.json",
        )  # fmt: skip
        return made["Policy"]["Arn"], "created"
    arn = current["Arn"]
    if policy_state(backend, stem, partition, existing) == UP_TO_DATE:
        return arn, UP_TO_DATE
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True)
    return arn, "updated to this labkit's version"


def class_setup(
    *,
    backend: str | Backend | None = None,
    regions: Sequence[str] = (),
    instructor: str | None = None,
    yes: bool = False,
) -> SetupReport:
    """Create (or bring up to date) every labkit policy, and attach the instructor's to the IAM user
    `instructor` when given (a dry run unless `yes=True`). Run as an account administrator, once per account."""
    chosen = class_backends(regions, backend)[0]
    partition = partition_of(chosen.region)
    account = chosen.client("sts").get_caller_identity()["Account"]
    report = SetupReport(not yes, chosen.region, instructor=instructor)
    existing = labkit_policies(chosen)
    arns = {stem: existing.get(policy_name(stem), {}).get("Arn") or policy_arn(stem, partition, account)
            for stem in SETUP_POLICIES}  # fmt: skip
    for stem in SETUP_POLICIES:
        if yes:
            arns[stem], report.policies[policy_name(stem)] = ensure_policy(chosen, stem, partition, existing)
        else:
            state = policy_state(chosen, stem, partition, existing)
            report.policies[policy_name(stem)] = {MISSING: "would be created", UP_TO_DATE: UP_TO_DATE}.get(
                state, "would be updated to this labkit's version"
            )
    if instructor:
        report.attached = _attach_instructor(chosen, instructor, [arns[stem] for stem in INSTRUCTOR_POLICIES], yes)
    return report


def _attach_instructor(backend: Backend, user: str, wanted: list[str], yes: bool) -> list[str]:
    iam = _iam(backend)
    try:
        path = iam.get_user(UserName=user)["User"]["Path"]
    except iam.exceptions.NoSuchEntityException:
        raise LabkitError(
            f"there is no IAM user {user!r} to make the instructor",
            field="--instructor",
            fix="create the instructor's IAM user first (outside /labkit/, the learners' path), then run this again",
        ) from None
    if path.startswith(POLICY_PATH):
        raise LabkitError(
            f"{user} is under {path}, the learners' path: an instructor there could manage their own user",
            field="--instructor",
            fix="make the instructor a user outside /labkit/ (e.g. path /)",
        )
    held = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]}
    missing = [arn for arn in wanted if arn not in held]
    if yes:
        for arn in missing:
            iam.attach_user_policy(UserName=user, PolicyArn=arn)
    return [arn.rsplit("/", 1)[-1] for arn in missing]
