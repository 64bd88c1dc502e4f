"""Onboard a class in one command: one IAM user per learner, tagged for attribute-based isolation.

Each learner is an IAM user `LAB-LEARNER` under the path /labkit/LAB/, with the learner permissions boundary,
tagged `labkit:lab` and `labkit:learner` (the tags every lab resource carries; the learner policies compare the
two with `${aws:PrincipalTag/...}`) and with the instance type and DB class the instructor allows
(`labkit:instance-type`, `labkit:db-class`: the cost guardrails), holding the four learner policies. The
policies themselves are an administrator's one-time setup (`labkit class setup`, labkit.classroom.setup): this
module writes none, and refuses to onboard until they are there and match this labkit's. Each learner's access
key goes to one file only its owner can read (0600), never to the screen; hand each file to its learner.

Names: a learner's user name is the prefix of every name and session id of their lab, and the policies match
session ids as `${aws:username}-*`; so a pair whose user name, followed by `-`, begins another's (lab `a`,
learner `b` and lab `a`, learner `b-c`; or lab `a-b`, learner `c` and lab `a`, learner `b-c`) is refused with
the reason, against every IAM user of the account (learners of any lab, and users labkit did not make: their
sessions are named the same way). Which patterns can meet is derived from the shipped policies in
tests/unit/test_learner_names.py, so a policy change that adds another prefix pattern fails there.

`create` and `delete` are dry runs unless `yes=True`. `delete` removes a learner only when no resource of their
lab is left in the regions given (reset the lab first), then deletes the user's keys, detaches its policies,
deletes the user and its credentials file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from labkit.aws.backend import Backend
from labkit.aws.errors import error_code, error_message
from labkit.aws.policies import (
    BOUNDARY_POLICY,
    LEARNER_BOUNDARY,
    LEARNER_POLICIES,
    POLICY_PATH,
    TAG_DB_CLASS,
    TAG_INSTANCE_TYPE,
    policy_arn,
    policy_name,
)
from labkit.aws.regions import partition_of
from labkit.aws.tags import TAG_LAB, TAG_LEARNER
from labkit.classroom.scan import class_backends, scan
from labkit.classroom.setup import SETUP_COMMAND, UP_TO_DATE, labkit_policies, policy_state
from labkit.config import LabConfig
from labkit.display import markdown_table
from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home, private_dir
from labkit.inputs import check_output_folder, split_names

COLUMNS = ["learner", "user", "result", "policies", "access_keys", "credentials_file", "limits", "reason"]
PROFILE = "labkit"  # the profile name inside each learner's credentials file
NEEDED_POLICIES = (*LEARNER_POLICIES, BOUNDARY_POLICY, LEARNER_BOUNDARY)  # what onboarding needs to find


@dataclass(frozen=True)
class LearnerRow:
    """One learner's identity and what was (or would be) done to it."""

    learner: str
    user: str
    result: str
    policies: int = 0
    access_keys: int = 0
    credentials_file: str = ""
    limits: str = ""  # the instance type and DB class the learner may launch (the cost guardrails)
    reason: str = ""


@dataclass
class LearnersReport:
    """The outcome of `learners create / list / delete`: one row per learner; no secret is ever in it."""

    action: str
    lab: str | None
    dry_run: bool
    rows: list[LearnerRow] = field(default_factory=list)
    policies: dict[str, str] = field(default_factory=dict)  # managed policy name -> what happened to it

    @property
    def ok(self) -> bool:
        """Nothing refused or failed, and no policy the onboarding needs is missing or out of date."""
        failed = any(row.result.startswith(("refused", "failed")) for row in self.rows)
        return not failed and not (self.action == "create" and self.policies)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(row) for row in self.rows], columns=COLUMNS)

    def summary(self) -> str:
        head = "dry run: " if self.dry_run else ""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.result] = counts.get(row.result, 0) + 1
        done = ", ".join(f"{n} {result}" for result, n in sorted(counts.items())) or "no learners"
        return f"{head}learners {self.action}{f' of lab {self.lab}' if self.lab else ''}: {done}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "lab": self.lab,
            "dry_run": self.dry_run,
            "summary": self.summary(),
            "learners": [asdict(row) for row in self.rows],
            "policies": self.policies,
        }

    def __str__(self) -> str:
        body = self.frame().to_string(index=False) if self.rows else "(none)"
        lines = [self.summary(), body]
        lines += [f"policy {name}: {what}" for name, what in self.policies.items()]
        if self.dry_run:
            lines.append("nothing was changed: run again with --yes (yes=True) to do it")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        """The table with each credentials file by name only (its folder is the machine's, not the class's)."""
        frame = self.frame()
        frame["credentials_file"] = [Path(path).name if path else "" for path in frame["credentials_file"]]
        policies = "".join(f"\n- policy `{name}`: {what}" for name, what in self.policies.items())
        hint = "\n\n*Nothing was changed: run again with `yes=True` to do it.*" if self.dry_run else ""
        return f"**{self.summary()}**\n\n{markdown_table(frame)}\n{policies}{hint}"


# ----- inputs -----


def parse_names(names: str | Iterable[str], lab: str) -> list[str]:
    """'ada,grace' or ['ada', 'grace'] -> checked learner names, in order (before any AWS call)."""
    chosen = split_names(names)  # an empty item or a repeat is refused, not dropped
    for learner in chosen:
        try:
            LabConfig(lab=lab, learner=learner)
        except ConfigError as exc:
            raise ConfigError(f"{learner!r}: {exc.message}", field="--names", fix=exc.fix) from None
    return chosen


def user_name(lab: str, learner: str) -> str:
    return f"{lab}-{learner}"


def user_path(lab: str) -> str:
    return f"{POLICY_PATH}{lab}/"


def credentials_path(lab: str, learner: str, folder: str | Path | None = None) -> Path:
    """Where a learner's credentials file goes: the given folder, else LABKIT_HOME/learners/LAB/."""
    base = Path(folder).expanduser() if folder else labkit_home() / "learners" / lab
    return base / f"{user_name(lab, learner)}.credentials"


# ----- the account -----


def _iam(backend: Backend) -> Any:
    return backend.client("iam")


def _account(backend: Backend) -> str:
    return backend.client("sts").get_caller_identity()["Account"]


def _users(backend: Backend, lab: str | None) -> dict[str, dict[str, Any]]:
    """Users labkit made (under /labkit/LAB/ or every lab), by name."""
    prefix = user_path(lab) if lab else POLICY_PATH
    pages = _iam(backend).get_paginator("list_users").paginate(PathPrefix=prefix)
    return {user["UserName"]: user for page in pages for user in page["Users"]}


def _user_tags(backend: Backend, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in _iam(backend).list_user_tags(UserName=name)["Tags"]}


def _attached(backend: Backend, name: str) -> list[str]:
    return [p["PolicyArn"] for p in _iam(backend).list_attached_user_policies(UserName=name)["AttachedPolicies"]]


def _keys(backend: Backend, name: str) -> list[str]:
    return [k["AccessKeyId"] for k in _iam(backend).list_access_keys(UserName=name)["AccessKeyMetadata"]]


def _write_credentials(path: Path, lab: str, learner: str, region: str, key: dict[str, str], limits: Limits) -> None:
    """Write one learner's key to a new file only its owner can read (0600 from the first byte)."""
    private_dir(path.parent)
    text = (
        f"# labkit: the AWS credentials of learner {learner} in lab {lab}. Give this file to {learner} only.\n"
        f"# Use it:  export AWS_SHARED_CREDENTIALS_FILE={path} AWS_PROFILE={PROFILE} AWS_REGION={region}\n"
        f'# and in lab.toml (or the setup form): lab = "{lab}", learner = "{learner}", backend = "aws"\n'
        f'# your class allows instance_type = "{limits.instance_type}", db_instance_class = "{limits.db_instance_class}"\n'
        f"[{PROFILE}]\n"
        f"aws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _backend(backend: str | Backend | None, regions: Sequence[str] = ()) -> Backend:
    return class_backends(regions, backend)[0]


# ----- create -----


@dataclass(frozen=True)
class Limits:
    """The cost guardrails an instructor gives a learner: the one EC2 instance type and the one DB instance class
    their lab may launch (the learner policies compare `ec2:InstanceType` and `rds:DatabaseClass` with these tags
    of the learner's user). The defaults are the lab's own."""

    instance_type: str
    db_instance_class: str

    @classmethod
    def of(cls, instance_type: str | None = None, db_instance_class: str | None = None) -> Limits:
        """Checked as a lab config checks them (a typo is refused before any AWS call)."""
        config = LabConfig(
            **({"instance_type": instance_type} if instance_type else {}),
            **({"db_instance_class": db_instance_class} if db_instance_class else {}),
        )
        return cls(config.instance_type, config.db_instance_class)

    def tags(self) -> dict[str, str]:
        return {TAG_INSTANCE_TYPE: self.instance_type, TAG_DB_CLASS: self.db_instance_class}

    def __str__(self) -> str:
        return f"{self.instance_type}, {self.db_instance_class}"


def name_clash(name: str, others: dict[str, str]) -> str:
    """Why user `name` cannot live beside `others` (user name -> who it is), or "" when it can.

    Every name of a learner's lab and every Session Manager session id of theirs starts with the user name and a
    hyphen (`LAB-LEARNER-cluster`; session ids `LAB-LEARNER-0123...`, which the policies match as
    `${aws:username}-*`), so when one user name plus `-` begins another, the first learner's patterns match the
    second's sessions and their names can meet; equal names are the same IAM user."""
    for other, who in sorted(others.items()):
        if other == name:
            return f"user {name} is already {who}: lab and learner spell the same name"
        if other.startswith(f"{name}-"):
            return f"{who}'s user {other} begins with {name}-, so {name}'s session and name patterns would match it"
        if name.startswith(f"{other}-"):
            return f"{name} begins with {other}- ({who}), so {other}'s session and name patterns would match it"
    return ""


def _class_members(backend: Backend) -> dict[str, str]:
    """Every IAM user of the account: user name -> "lab L, learner X" for a learner labkit made (any lab), "IAM
    user N outside labkit" for any other. Every user counts: Session Manager names an IAM user's sessions
    `USERNAME-...` whoever made the user, so a learner `class1-ada` (whose policies match `class1-ada-*`) beside
    an administrator `class1-ada-admin` could end and resume the administrator's sessions."""
    learners = _users(backend, None)
    members = {}
    for page in _iam(backend).get_paginator("list_users").paginate():
        for user in page["Users"]:
            name = user["UserName"]
            if name in learners:
                tags = _user_tags(backend, name)
                members[name] = f"lab {tags.get(TAG_LAB, '?')}, learner {tags.get(TAG_LEARNER, '?')}"
            else:
                members[name] = f"IAM user {name} outside labkit"
    return members


def _setup(backend: Backend, partition: str, account: str) -> tuple[dict[str, str], dict[str, str]]:
    """The ARNs of the policies onboarding needs (as the account lists them), and those that are missing or
    differ from this labkit's: name -> state."""
    found = labkit_policies(backend)
    arns = {stem: found.get(policy_name(stem), {}).get("Arn") or policy_arn(stem, partition, account)
            for stem in NEEDED_POLICIES}  # fmt: skip
    states = {policy_name(stem): policy_state(backend, stem, partition, found) for stem in NEEDED_POLICIES}
    return arns, {name: state for name, state in states.items() if state != UP_TO_DATE}


def learners_create(
    *,
    lab: str,
    names: str | Iterable[str],
    backend: str | Backend | None = None,
    credentials_dir: str | Path | None = None,
    instance_type: str | None = None,
    db_instance_class: str | None = None,
    yes: bool = False,
) -> LearnersReport:
    """Create each learner's IAM user (with the learner boundary, the lab tags and the cost guardrails), attach
    the learner policies and issue an access key (a dry run unless `yes=True`). The policies are an
    administrator's one-time setup (`labkit class setup`); without them, or with other versions, nothing is
    created."""
    LabConfig(lab=lab)
    learners = parse_names(names, lab)
    limits = Limits.of(instance_type, db_instance_class)
    if credentials_dir:
        check_output_folder(credentials_dir, field="--dir")
    chosen = _backend(backend)
    partition = partition_of(chosen.region)
    account = _account(chosen)
    report = LearnersReport("create", lab, not yes)
    arns, problems = _setup(chosen, partition, account)
    report.policies = {name: f"{state}: an administrator runs `{SETUP_COMMAND}` first" for name, state in
                       problems.items()}  # fmt: skip
    if problems and yes:
        raise LabkitError(
            f"the class policies are not set up as this labkit needs: {', '.join(f'{n} {s}' for n, s in problems.items())}",
            field="policies",
            fix=f"an account administrator runs `{SETUP_COMMAND}` once (policies/README.md), then run this again",
        )
    existing = _users(chosen, lab)
    new = [learner for learner in learners if user_name(lab, learner) not in existing]
    clashes = [credentials_path(lab, learner, credentials_dir) for learner in new]
    clashes = [path for path in clashes if path.exists()]
    if clashes:
        raise LabkitError(
            f"a credentials file already exists: {clashes[0]}",
            field="credentials_dir",
            fix="it belongs to an earlier user of that name: move or delete it, or give another --dir",
        )
    members = _class_members(chosen)
    wanted = {user_name(lab, learner): f"lab {lab}, learner {learner}" for learner in learners}
    learner_arns = [arns[stem] for stem in LEARNER_POLICIES]
    onboarding = Onboarding(chosen, lab, learner_arns, arns[LEARNER_BOUNDARY], limits, yes)
    for learner in learners:
        name = user_name(lab, learner)
        clash = (
            "" if name in existing else name_clash(name, {**members, **{u: w for u, w in wanted.items() if u != name}})
        )
        if clash:
            report.rows.append(LearnerRow(learner, name, "refused", reason=f"{clash}; choose another learner name"))
            continue
        report.rows.append(onboarding.one(learner, existing, credentials_dir))
    return report


@dataclass
class Onboarding:
    """What every learner of one `learners create` gets: the policies, the boundary, the guardrails."""

    backend: Backend
    lab: str
    policy_arns: list[str]
    boundary_arn: str
    limits: Limits
    yes: bool

    def one(self, learner: str, existing: dict[str, Any], folder: Any) -> LearnerRow:
        name, path = user_name(self.lab, learner), credentials_path(self.lab, learner, folder)
        if name in existing:
            return self._bring_up_to_date(learner, name, path)
        if not self.yes:
            return LearnerRow(learner, name, "would create", len(self.policy_arns), 1, str(path), str(self.limits))
        iam = _iam(self.backend)
        tags = {TAG_LAB: self.lab, TAG_LEARNER: learner, **self.limits.tags()}
        iam.create_user(
            UserName=name, Path=user_path(self.lab), PermissionsBoundary=self.boundary_arn,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )  # fmt: skip
        for arn in self.policy_arns:
            iam.attach_user_policy(UserName=name, PolicyArn=arn)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        try:
            _write_credentials(path, self.lab, learner, self.backend.region, key, self.limits)
        except OSError as exc:
            iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])  # never leave a key nobody holds
            reason = f"cannot write {path}: {exc.strerror or exc}"
            return LearnerRow(learner, name, "failed", len(self.policy_arns), 0, "", str(self.limits), reason)
        return LearnerRow(learner, name, "created", len(self.policy_arns), 1, str(path), str(self.limits))

    def _bring_up_to_date(self, learner: str, name: str, path: Path) -> LearnerRow:
        """An existing learner gets what this onboarding gives: the boundary, the guardrails, the policies."""
        iam, backend = _iam(self.backend), self.backend
        tags = _user_tags(backend, name)
        if tags.get(TAG_LAB) != self.lab or tags.get(TAG_LEARNER) != learner:
            reason = f"user {name} exists with other tags ({tags}); it is not labkit's learner {learner}"
            return LearnerRow(learner, name, "refused", reason=reason)
        boundary = (iam.get_user(UserName=name)["User"].get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        limits = {k: v for k, v in self.limits.tags().items() if tags.get(k) != v}
        missing = [arn for arn in self.policy_arns if arn not in _attached(backend, name)]
        changes = [what for what, due in (("boundary", boundary != self.boundary_arn), ("limits", limits),
                                          ("policies", missing)) if due]  # fmt: skip
        if self.yes and changes:
            if boundary != self.boundary_arn:
                try:
                    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=self.boundary_arn)
                except ClientError as exc:  # this learner stays as it was; the others go on
                    reason = f"the learner boundary could not be set: {error_code(exc)}: {error_message(exc)}"
                    return LearnerRow(learner, name, "failed", reason=reason)
            if limits:
                iam.tag_user(UserName=name, Tags=[{"Key": k, "Value": v} for k, v in limits.items()])
            for arn in missing:
                iam.attach_user_policy(UserName=name, PolicyArn=arn)
        kept = str(path) if path.exists() else ""
        reason = "exists; its access key is not issued again (delete and create the learner for a new one)"
        verb = "updated" if self.yes else "would update"
        result = f"exists ({verb} {', '.join(changes)})" if changes else "exists"
        keys = len(_keys(backend, name))
        return LearnerRow(learner, name, result, len(self.policy_arns), keys, kept, str(self.limits), reason)


# ----- list -----


def learners_list(*, lab: str | None = None, backend: str | Backend | None = None) -> LearnersReport:
    """Every learner identity labkit made (of one lab, or all), with its policies, keys and credentials file."""
    if lab is not None:
        LabConfig(lab=lab)
    chosen = _backend(backend)
    report = LearnersReport("list", lab, False)
    for name in sorted(_users(chosen, lab)):
        tags = _user_tags(chosen, name)
        learner, user_lab = tags.get(TAG_LEARNER, "?"), tags.get(TAG_LAB, "?")
        path = credentials_path(user_lab, learner) if "?" not in (learner, user_lab) else None
        kept = str(path) if path is not None and path.exists() else ""
        limits = ", ".join(tags[k] for k in (TAG_INSTANCE_TYPE, TAG_DB_CLASS) if k in tags)
        row = LearnerRow(
            learner, name, f"lab {user_lab}", len(_attached(chosen, name)), len(_keys(chosen, name)), kept, limits
        )
        report.rows.append(row)
    return report


# ----- delete -----


def learners_delete(
    *,
    lab: str,
    names: str | Iterable[str] = (),
    regions: Sequence[str] = (),
    backend: str | Backend | None = None,
    backends: Sequence[Backend] = (),
    credentials_dir: str | Path | None = None,
    yes: bool = False,
) -> LearnersReport:
    """Delete learners whose labs are gone from every region given (a dry run unless `yes=True`)."""
    LabConfig(lab=lab)
    given = names if isinstance(names, str) else list(names)
    wanted = parse_names(given, lab) if given else []
    if credentials_dir:
        check_output_folder(credentials_dir, field="--dir")
    chosen = class_backends(regions, backend, backends)
    users = _users(chosen[0], lab)
    tagged = {name: _user_tags(chosen[0], name) for name in users}
    learners = {  # only users labkit made for this lab: both tags, this lab (anything else is never touched)
        tags[TAG_LEARNER]: name for name, tags in tagged.items() if tags.get(TAG_LAB) == lab and tags.get(TAG_LEARNER)
    }
    report = LearnersReport("delete", lab, not yes)
    left = {}
    for region_scan in scan(chosen):
        for learner in learners:
            count = len(region_scan.of(lab, learner))
            if count:
                left.setdefault(learner, []).append(f"{count} in {region_scan.region}")
    for learner in wanted or sorted(learners):
        name = learners.get(learner)
        if name is None:
            report.rows.append(LearnerRow(learner, user_name(lab, learner), "not found", reason="no such learner"))
            continue
        if learner in left:
            reason = (
                f"their lab still has resources ({', '.join(left[learner])}): run "
                f"`labkit class reset --lab {lab} --learner {learner} --yes` first"
            )
            report.rows.append(LearnerRow(learner, name, "refused", reason=reason))
            continue
        path = credentials_path(lab, learner, credentials_dir)
        if not yes:
            report.rows.append(LearnerRow(learner, name, "would delete", credentials_file=str(path)))
            continue
        report.rows.append(_delete_one(chosen[0], learner, name, path))
    return report


def _delete_one(backend: Backend, learner: str, name: str, path: Path) -> LearnerRow:
    """IAM's order: access keys, attached policies, then the user (DeleteUser refuses while they exist)."""
    iam = _iam(backend)
    try:
        for key in _keys(backend, name):
            iam.delete_access_key(UserName=name, AccessKeyId=key)
        for arn in _attached(backend, name):
            iam.detach_user_policy(UserName=name, PolicyArn=arn)
        iam.delete_user(UserName=name)
    except ClientError as exc:
        return LearnerRow(learner, name, "failed", reason=f"{error_code(exc)}: {exc}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return LearnerRow(learner, name, "deleted", credentials_file=str(path))
