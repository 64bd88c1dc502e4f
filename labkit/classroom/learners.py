"""Onboard a class in one command: one IAM user per learner, tagged for attribute-based isolation.

Each learner is an IAM user `LAB-LEARNER` under the path /labkit/LAB/, tagged `labkit:lab` and
`labkit:learner` (the tags every lab resource carries; the learner policies compare the two with
`${aws:PrincipalTag/...}`), holding the four learner policies. The managed policies and the permissions
boundary are created (or brought up to date) first, rendered for the account's partition. Each learner's
access key goes to one file only its owner can read (0600), never to the screen; hand each file to its learner.

`create` and `delete` are dry runs unless `yes=True`. `delete` removes a learner only when no resource of their
lab is left in the regions given (reset the lab first), then deletes the user's keys, detaches its policies,
deletes the user and its credentials file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd
from botocore.exceptions import ClientError

from labkit.aws.backend import Backend
from labkit.aws.errors import error_code
from labkit.aws.tags import TAG_LAB, TAG_LEARNER
from labkit.classroom.policies import (
    BOUNDARY_POLICY,
    LEARNER_POLICIES,
    POLICY_PATH,
    policy_arn,
    policy_name,
    render,
)
from labkit.classroom.scan import class_backends, scan
from labkit.config import LabConfig, partition_of
from labkit.display import markdown_table
from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home, private_dir
from labkit.inputs import check_output_folder, split_names

COLUMNS = ["learner", "user", "result", "policies", "access_keys", "credentials_file", "reason"]
PROFILE = "labkit"  # the profile name inside each learner's credentials file
_MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy


@dataclass(frozen=True)
class LearnerRow:
    """One learner's identity and what was (or would be) done to it."""

    learner: str
    user: str
    result: str
    policies: int = 0
    access_keys: int = 0
    credentials_file: str = ""
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
        return not any(row.result.startswith(("refused", "failed")) for row in self.rows)

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


def _labkit_policies(backend: Backend) -> dict[str, dict[str, Any]]:
    """The managed policies under /labkit/, by name (found by listing: their ARNs are the account's to say)."""
    pages = _iam(backend).get_paginator("list_policies").paginate(Scope="Local", PathPrefix=POLICY_PATH)
    return {policy["PolicyName"]: policy for page in pages for policy in page["Policies"]}


def ensure_policy(backend: Backend, stem: str, partition: str, existing: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """Create the managed policy from policies/<stem>.json, or make the file's text its default version.
    Returns its ARN and what was done."""
    iam = _iam(backend)
    document = render(stem, partition)
    text = json.dumps(document)
    current = existing.get(policy_name(stem))
    if current is None:
        made = iam.create_policy(
            PolicyName=policy_name(stem), Path=POLICY_PATH, PolicyDocument=text,
            Description=f"labkit: policies/{stem}.json",
        )  # fmt: skip
        return made["Policy"]["Arn"], "created"
    arn = current["Arn"]
    version = iam.get_policy_version(PolicyArn=arn, VersionId=current["DefaultVersionId"])["PolicyVersion"]
    found = version["Document"]
    if (json.loads(unquote(found)) if isinstance(found, str) else found) == document:
        return arn, "up to date"
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    if len(versions) >= _MAX_POLICY_VERSIONS:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=text, SetAsDefault=True)
    return arn, "updated to the file's version"


def _write_credentials(path: Path, lab: str, learner: str, region: str, key: dict[str, str]) -> None:
    """Write one learner's key to a new file only its owner can read (0600 from the first byte)."""
    private_dir(path.parent)
    text = (
        f"# labkit: the AWS credentials of learner {learner} in lab {lab}. Give this file to {learner} only.\n"
        f"# Use it:  export AWS_SHARED_CREDENTIALS_FILE={path} AWS_PROFILE={PROFILE} AWS_REGION={region}\n"
        f'# and in lab.toml (or the setup form): lab = "{lab}", learner = "{learner}", backend = "aws"\n'
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


def learners_create(
    *,
    lab: str,
    names: str | Iterable[str],
    backend: str | Backend | None = None,
    credentials_dir: str | Path | None = None,
    yes: bool = False,
) -> LearnersReport:
    """Create each learner's IAM user, tags, policies and access key (a dry run unless `yes=True`)."""
    LabConfig(lab=lab)
    learners = parse_names(names, lab)
    if credentials_dir:
        check_output_folder(credentials_dir, field="--dir")
    chosen = _backend(backend)
    partition = partition_of(chosen.region)
    account = _account(chosen)
    existing = _users(chosen, lab)
    report = LearnersReport("create", lab, not yes)
    new = [learner for learner in learners if user_name(lab, learner) not in existing]
    clashes = [credentials_path(lab, learner, credentials_dir) for learner in new]
    clashes = [path for path in clashes if path.exists()]
    if clashes:
        raise LabkitError(
            f"a credentials file already exists: {clashes[0]}",
            field="credentials_dir",
            fix="it belongs to an earlier user of that name: move or delete it, or give another --dir",
        )
    arns = {stem: policy_arn(stem, partition, account) for stem in (*LEARNER_POLICIES, BOUNDARY_POLICY)}
    if yes:
        found = _labkit_policies(chosen)
        for stem in arns:
            arns[stem], report.policies[policy_name(stem)] = ensure_policy(chosen, stem, partition, found)
    else:
        report.policies = dict.fromkeys(map(policy_name, arns), "would be created or brought up to date")
    learner_arns = [arns[stem] for stem in LEARNER_POLICIES]
    for learner in learners:
        report.rows.append(_create_one(chosen, lab, learner, learner_arns, existing, credentials_dir, yes))
    return report


def _create_one(
    backend: Backend, lab: str, learner: str, arns: list[str], existing: dict[str, Any], folder: Any, yes: bool
) -> LearnerRow:
    name = user_name(lab, learner)
    path = credentials_path(lab, learner, folder)
    if name in existing:
        tags = _user_tags(backend, name)
        if tags.get(TAG_LAB) != lab or tags.get(TAG_LEARNER) != learner:
            reason = f"user {name} exists with other tags ({tags}); it is not labkit's learner {learner}"
            return LearnerRow(learner, name, "refused", reason=reason)
        missing = [arn for arn in arns if arn not in _attached(backend, name)]
        if yes:
            for arn in missing:
                _iam(backend).attach_user_policy(UserName=name, PolicyArn=arn)
        kept = str(path) if path.exists() else ""
        reason = "exists; its access key is not issued again (delete and create the learner for a new one)"
        result = "exists" if not missing or yes else "exists (would attach policies)"
        return LearnerRow(learner, name, result, len(arns), len(_keys(backend, name)), kept, reason)
    if not yes:
        return LearnerRow(learner, name, "would create", len(arns), 1, str(path))
    iam = _iam(backend)
    tags = [{"Key": TAG_LAB, "Value": lab}, {"Key": TAG_LEARNER, "Value": learner}]
    iam.create_user(UserName=name, Path=user_path(lab), Tags=tags)
    for arn in arns:
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    try:
        _write_credentials(path, lab, learner, backend.region, key)
    except OSError as exc:
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])  # never leave a key nobody holds
        return LearnerRow(learner, name, "failed", len(arns), 0, "", f"cannot write {path}: {exc.strerror or exc}")
    return LearnerRow(learner, name, "created", len(arns), 1, str(path))


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
        row = LearnerRow(learner, name, f"lab {user_lab}", len(_attached(chosen, name)), len(_keys(chosen, name)), kept)
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
