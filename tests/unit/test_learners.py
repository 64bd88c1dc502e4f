"""`labkit class setup` and `labkit class learners create | list | delete`: the administrator's one-time setup and
onboarding a class, on in-process moto (as the account's admin).

The isolation the tags and policies give, and that an instructor cannot become an administrator, are proven in
tests/unit/test_abac_matrix.py; here: what is created, where the secrets go (a 0600 file each, never output), the
cost guardrails, names that would collide, dry runs, reruns, refusals, and the partition.
"""

from __future__ import annotations

import argparse
import io
import json
import stat
from pathlib import Path

import pytest
from support.strict import UserBoundaries

from labkit.aws.policies import LEARNER_POLICIES, TAG_DB_CLASS, TAG_INSTANCE_TYPE, policy_arn
from labkit.classroom.learners import (
    credentials_path,
    learners_create,
    learners_delete,
    learners_list,
    name_clash,
    parse_names,
)
from labkit.classroom.setup import class_setup
from labkit.cli import classroom as cli_class
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError


@pytest.fixture
def bare_account(moto_backend, lab_home, fast_moto):
    """An account as moto makes it, with the IAM user boundaries moto does not keep (support/strict.py)."""
    UserBoundaries().install(moto_backend.session().events)
    return moto_backend


@pytest.fixture
def account(bare_account):
    """The same after the administrator's one-time `labkit class setup --yes`."""
    class_setup(backend=bare_account, yes=True)
    return bare_account


def _secrets(folder: Path) -> list[str]:
    return [
        line.split("=", 1)[1].strip()
        for path in folder.glob("*.credentials")
        for line in path.read_text().splitlines()
        if line.startswith("aws_secret_access_key")
    ]


def test_names_are_checked_before_any_aws_call() -> None:
    assert parse_names(" ada, grace ", "class1") == ["ada", "grace"]
    with pytest.raises(ConfigError, match="more than once"):  # a repeat or an empty item is a typo: refused
        parse_names(" ada, grace,ada", "class1")
    with pytest.raises(ConfigError, match="is empty"):
        parse_names("ada,grace,", "class1")
    with pytest.raises(ConfigError) as bad:
        parse_names("ada,Grace Hopper", "class1")
    assert bad.value.field == "--names" and "Grace Hopper" in str(bad.value)
    with pytest.raises(ConfigError, match="no learner names"):
        parse_names(" , ", "class1")


def test_a_dry_run_creates_nothing(account, tmp_path) -> None:
    policies = account.client("iam").list_policies(Scope="Local")["Policies"]
    report = learners_create(lab="class1", names="ada,grace", backend=account, credentials_dir=tmp_path)
    assert report.dry_run and [r.result for r in report.rows] == ["would create", "would create"]
    assert report.ok and report.policies == {}
    assert account.client("iam").list_users()["Users"] == []
    assert account.client("iam").list_policies(Scope="Local")["Policies"] == policies
    assert list(tmp_path.iterdir()) == []
    assert "run again with --yes" in str(report)


def test_onboarding_needs_the_administrators_setup_and_writes_no_policy(bare_account, tmp_path) -> None:
    """The instructor writes no policy (issue 25, item 8): before an administrator's `labkit class setup --yes`
    onboarding says what is missing and creates nothing."""
    dry = learners_create(lab="class1", names="ada", backend=bare_account, credentials_dir=tmp_path)
    assert not dry.ok and "labkit-learner-compute" in dry.policies
    assert "labkit class setup --yes" in dry.policies["labkit-learner-boundary"]
    with pytest.raises(LabkitError, match="labkit class setup --yes") as refused:
        learners_create(lab="class1", names="ada", backend=bare_account, credentials_dir=tmp_path, yes=True)
    assert refused.value.field == "policies"
    iam = bare_account.client("iam")
    assert iam.list_users()["Users"] == [] and iam.list_policies(Scope="Local")["Policies"] == []


def test_setup_creates_every_policy_once_then_keeps_them_up_to_date(bare_account, monkeypatch) -> None:
    dry = class_setup(backend=bare_account)
    assert dry.dry_run and set(dry.policies.values()) == {"would be created"} and len(dry.policies) == 8
    assert bare_account.client("iam").list_policies(Scope="Local")["Policies"] == []
    done = class_setup(backend=bare_account, yes=True)
    assert set(done.policies.values()) == {"created"}
    assert set(class_setup(backend=bare_account, yes=True).policies.values()) == {"up to date"}
    from labkit.aws import policies

    original = policies.render

    def newer(stem: str, partition: str = "aws") -> dict:
        document = original(stem, partition)
        document["Statement"][0]["Sid"] += "Renamed"
        return document

    monkeypatch.setattr(policies, "render", newer)
    from labkit.classroom import setup

    monkeypatch.setattr(setup, "render", newer)
    assert set(class_setup(backend=bare_account, yes=True).policies.values()) == {"updated to this labkit's version"}


def test_setup_gives_an_instructor_their_policies_but_never_one_under_the_learners_path(bare_account) -> None:
    iam = bare_account.client("iam")
    iam.create_user(UserName="teacher")
    report = class_setup(backend=bare_account, instructor="teacher", yes=True)
    assert report.attached == ["labkit-learner-read", "labkit-instructor-class", "labkit-instructor-reset"]
    held = [p["PolicyName"] for p in iam.list_attached_user_policies(UserName="teacher")["AttachedPolicies"]]
    assert sorted(held) == sorted(report.attached)
    iam.create_user(UserName="sneaky", Path="/labkit/class1/")
    with pytest.raises(LabkitError, match="learners' path") as refused:
        class_setup(backend=bare_account, instructor="sneaky", yes=True)
    assert refused.value.field == "--instructor"
    with pytest.raises(LabkitError, match="no IAM user"):
        class_setup(backend=bare_account, instructor="nobody", yes=True)


def test_create_tags_users_attaches_policies_and_writes_private_files(account, tmp_path) -> None:
    report = learners_create(lab="class1", names="ada,grace", backend=account, credentials_dir=tmp_path, yes=True)
    iam = account.client("iam")
    assert [(r.learner, r.result) for r in report.rows] == [("ada", "created"), ("grace", "created")]
    user = iam.get_user(UserName="class1-ada")["User"]
    assert user["Path"] == "/labkit/class1/"
    account_id = user["Arn"].split(":")[4]
    assert user["PermissionsBoundary"]["PermissionsBoundaryArn"] == policy_arn("learner-boundary", "aws", account_id)
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="class1-ada")["Tags"]}
    assert tags == {"labkit:lab": "class1", "labkit:learner": "ada", TAG_INSTANCE_TYPE: "t3.micro",
                    TAG_DB_CLASS: "db.t4g.medium"}  # fmt: skip
    assert {r.limits for r in report.rows} == {"t3.micro, db.t4g.medium"}
    attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName="class1-ada")["AttachedPolicies"]}
    assert attached == {policy_arn(stem, "aws", user["Arn"].split(":")[4]) for stem in LEARNER_POLICIES}
    boundary = iam.get_policy(
        PolicyArn=f"arn:aws:iam::{user['Arn'].split(':')[4]}:policy/labkit/labkit-instance-boundary"
    )
    assert boundary["Policy"]["Path"] == "/labkit/"
    for learner in ("ada", "grace"):
        path = credentials_path("class1", learner, tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
        assert f'learner = "{learner}"' in path.read_text() and 'instance_type = "t3.micro"' in path.read_text()
    shown = str(report) + report._repr_markdown_() + json.dumps(report.to_dict())
    assert len(_secrets(tmp_path)) == 2 and not any(secret in shown for secret in _secrets(tmp_path))


def test_create_again_issues_no_second_key_and_refuses_a_stale_file(account, tmp_path) -> None:
    learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    again = learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    assert [r.result for r in again.rows] == ["exists"] and again.policies == {} and again.ok
    assert len(account.client("iam").list_access_keys(UserName="class1-ada")["AccessKeyMetadata"]) == 1
    stale = credentials_path("class1", "grace", tmp_path)
    stale.write_text("an old key")
    with pytest.raises(LabkitError, match="already exists"):
        learners_create(lab="class1", names="ada,grace", backend=account, credentials_dir=tmp_path, yes=True)
    assert stale.read_text() == "an old key", "never overwritten"
    assert "class1-grace" not in {u["UserName"] for u in account.client("iam").list_users()["Users"]}


def test_an_instructor_sets_each_learners_limits_and_can_change_them(account, tmp_path) -> None:
    """The cost guardrails (issue 25, item 9): the instance type and DB class a learner may launch are tags of
    their user, which the learner policies compare with ec2:InstanceType and rds:DatabaseClass."""
    iam = account.client("iam")
    first = learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True,
                            instance_type="t4g.micro", db_instance_class="db.t3.medium")  # fmt: skip
    assert first.rows[0].limits == "t4g.micro, db.t3.medium"
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="class1-ada")["Tags"]}
    assert (tags[TAG_INSTANCE_TYPE], tags[TAG_DB_CLASS]) == ("t4g.micro", "db.t3.medium")
    dry = learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path)
    assert dry.rows[0].result == "exists (would update limits)"
    changed = learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    assert changed.rows[0].result == "exists (updated limits)"
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="class1-ada")["Tags"]}
    assert (tags[TAG_INSTANCE_TYPE], tags[TAG_DB_CLASS]) == ("t3.micro", "db.t4g.medium")
    assert learners_list(lab="class1", backend=account).rows[0].limits == "t3.micro, db.t4g.medium"
    with pytest.raises(ConfigError) as typo:
        learners_create(lab="class1", names="grace", backend=account, instance_type="t3.mikro")
    assert typo.value.field == "instance_type"


def test_a_learner_made_before_the_boundary_gets_it(account, tmp_path) -> None:
    """Users onboarded by an earlier labkit have no boundary and no limits: onboarding them again adds both."""
    iam = account.client("iam")
    iam.create_user(UserName="class1-ada", Path="/labkit/class1/",
                    Tags=[{"Key": "labkit:lab", "Value": "class1"}, {"Key": "labkit:learner", "Value": "ada"}])  # fmt: skip
    report = learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    assert report.rows[0].result == "exists (updated boundary, limits, policies)"
    assert iam.get_user(UserName="class1-ada")["User"]["PermissionsBoundary"]["PermissionsBoundaryArn"].endswith(
        "policy/labkit/labkit-learner-boundary"
    )


def test_names_whose_patterns_would_meet_are_refused_with_the_reason(account, tmp_path) -> None:
    """Issue 25, item 11: a learner's names and session ids start with `LAB-LEARNER-`, and the policies match
    sessions as `${aws:username}-*`; a user name that begins another's plus `-` would reach the other's."""
    learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    report = learners_create(lab="class1", names="ada-x,grace", backend=account, credentials_dir=tmp_path, yes=True)
    results = {r.learner: (r.result, r.reason) for r in report.rows}
    assert results["grace"][0] == "created" and results["ada-x"][0] == "refused" and not report.ok
    assert (
        "class1-ada-x begins with class1-ada-" in results["ada-x"][1]
        and "lab class1, learner ada" in results["ada-x"][1]
    )
    # another lab's names spell the same user: lab class1-ada, learner x is user class1-ada-x as well
    other = learners_create(lab="class1-ada", names="x", backend=account, credentials_dir=tmp_path)
    assert other.rows[0].result == "refused"
    # within one request too, before anything exists
    both = learners_create(lab="class2", names="bob,bob-b", backend=account, credentials_dir=tmp_path)
    assert [r.result for r in both.rows] == ["refused", "refused"]
    assert "class1-ada-x" not in {u["UserName"] for u in account.client("iam").list_users()["Users"]}
    assert name_clash("class1-bob", {"class1-bobby": "lab class1, learner bobby"}) == "", "a prefix without a hyphen"


def test_an_iam_user_labkit_did_not_make_counts_too(account, tmp_path):
    """Session Manager names every IAM user's sessions USERNAME-...: a learner `class1-ann` beside an
    administrator `class1-ann-admin` would reach the administrator's sessions. Before, only /labkit/ users counted."""
    account.client("iam").create_user(UserName="class1-ann-admin")
    report = learners_create(lab="class1", names="ann,bob", backend=account, credentials_dir=tmp_path, yes=True)
    rows = {row.learner: row for row in report.rows}
    assert rows["bob"].result == "created" and rows["ann"].result == "refused" and not report.ok
    assert "IAM user class1-ann-admin outside labkit" in rows["ann"].reason, rows["ann"].reason
    assert "class1-ann" not in {u["UserName"] for u in account.client("iam").list_users()["Users"]}


def test_delete_waits_until_the_learners_lab_is_gone(account, tmp_path) -> None:
    import labkit

    learners_create(lab="class1", names="ada,grace", backend=account, credentials_dir=tmp_path, yes=True)
    labkit.apply(LabConfig(lab="class1", learner="grace", readers=0), account, only="network", stream=io.StringIO())
    dry = learners_delete(lab="class1", backend=account, credentials_dir=tmp_path)
    assert {r.learner: r.result for r in dry.rows} == {"ada": "would delete", "grace": "refused"}
    assert "labkit class reset --lab class1 --learner grace --yes" in dry.rows[1].reason
    done = learners_delete(lab="class1", backend=account, credentials_dir=tmp_path, yes=True)
    assert {r.learner: r.result for r in done.rows} == {"ada": "deleted", "grace": "refused"} and not done.ok
    assert not credentials_path("class1", "ada", tmp_path).exists()
    assert credentials_path("class1", "grace", tmp_path).exists()
    assert [r.learner for r in learners_list(lab="class1", backend=account).rows] == ["grace"]


def test_govcloud_gets_policies_in_its_own_partition(fast_moto, lab_home, tmp_path) -> None:
    """Every ARN of the created policies names the region's partition (IAM identifiers, ARN format)."""
    from moto import mock_aws
    from support.backends import InProcessBackend

    with mock_aws():
        backend = InProcessBackend.make("us-gov-west-1")
        UserBoundaries().install(backend.session().events)
        class_setup(backend=backend, yes=True)
        learners_create(lab="class1", names="ada", backend=backend, credentials_dir=tmp_path, yes=True)
        iam = backend.client("iam")
        for policy in iam.list_policies(Scope="Local")["Policies"]:
            version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
            text = json.dumps(version["PolicyVersion"]["Document"])
            assert "arn:aws:" not in text and "arn:aws-us-gov:" in text, policy["PolicyName"]


# ----- the command line -----


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="labkit")
    cli_class.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["class", "learners", *argv])
    return args.handler(args)


def test_cli_create_list_delete(account, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli_class, "backends_for", lambda backend, regions: [account])
    assert run("create", "--lab", "class1", "--names", "ada,grace", "--dir", str(tmp_path)) == 0
    assert "would create" in capsys.readouterr().out
    assert run("create", "--lab", "class1", "--names", "ada,grace", "--dir", str(tmp_path), "--yes", "--json") == 0
    out = capsys.readouterr().out
    assert {row["result"] for row in json.loads(out)["learners"]} == {"created"}
    assert not any(secret in out for secret in _secrets(tmp_path)), "a secret reached the terminal"
    assert run("list", "--lab", "class1", "--json") == 0
    assert [row["learner"] for row in json.loads(capsys.readouterr().out)["learners"]] == ["ada", "grace"]
    assert run("delete", "--lab", "class1", "--names", "ada", "--dir", str(tmp_path), "--yes") == 0
    assert "deleted" in capsys.readouterr().out


def test_cli_bad_input_exits_2_naming_the_flag(account, monkeypatch, capsys) -> None:
    made = []
    monkeypatch.setattr(cli_class, "backends_for", lambda backend, regions: made.append(1) or [account])
    assert run("create", "--lab", "class1", "--names", "ada,Bad Name") == 2
    assert "--names" in capsys.readouterr().err
    assert run("create", "--lab", "Class 1", "--names", "ada") == 2
    assert run("create", "--lab", "class1", "--names", "ada", "--instance-type", "p5.48xlarg") == 2
    assert "instance_type" in capsys.readouterr().err
    assert made == [], "refused before any backend was made"


def test_delete_never_touches_a_user_labkit_did_not_make(account, tmp_path) -> None:
    """A user under /labkit/LAB/ without the learner tags (someone else's) is neither listed for deletion nor deleted."""
    iam = account.client("iam")
    iam.create_user(UserName="class1-helper", Path="/labkit/class1/")
    learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    done = learners_delete(lab="class1", backend=account, credentials_dir=tmp_path, yes=True)
    assert [(r.learner, r.result) for r in done.rows] == [("ada", "deleted")]
    assert iam.get_user(UserName="class1-helper")["User"]["UserName"] == "class1-helper"
