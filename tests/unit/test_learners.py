"""`labkit class learners create | list | delete`: onboarding a class, on in-process moto (as the account's admin).

The isolation the tags and policies give is proven in tests/unit/test_abac_matrix.py; here: what is created,
where the secrets go (a 0600 file each, never output), dry runs, reruns, refusals, and the partition.
"""

from __future__ import annotations

import argparse
import io
import json
import stat
from pathlib import Path

import pytest

from labkit.classroom.learners import credentials_path, learners_create, learners_delete, learners_list, parse_names
from labkit.classroom.policies import LEARNER_POLICIES, policy_arn
from labkit.cli import classroom as cli_class
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError


@pytest.fixture
def account(moto_backend, lab_home, fast_moto):
    return moto_backend


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
    report = learners_create(lab="class1", names="ada,grace", backend=account, credentials_dir=tmp_path)
    assert report.dry_run and [r.result for r in report.rows] == ["would create", "would create"]
    assert account.client("iam").list_users()["Users"] == []
    assert account.client("iam").list_policies(Scope="Local")["Policies"] == []
    assert list(tmp_path.iterdir()) == []
    assert "run again with --yes" in str(report)


def test_create_tags_users_attaches_policies_and_writes_private_files(account, tmp_path) -> None:
    report = learners_create(lab="class1", names="ada,grace", backend=account, credentials_dir=tmp_path, yes=True)
    iam = account.client("iam")
    assert [(r.learner, r.result) for r in report.rows] == [("ada", "created"), ("grace", "created")]
    user = iam.get_user(UserName="class1-ada")["User"]
    assert user["Path"] == "/labkit/class1/"
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="class1-ada")["Tags"]}
    assert tags == {"labkit:lab": "class1", "labkit:learner": "ada"}
    attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName="class1-ada")["AttachedPolicies"]}
    assert attached == {policy_arn(stem, "aws", user["Arn"].split(":")[4]) for stem in LEARNER_POLICIES}
    boundary = iam.get_policy(
        PolicyArn=f"arn:aws:iam::{user['Arn'].split(':')[4]}:policy/labkit/labkit-instance-boundary"
    )
    assert boundary["Policy"]["Path"] == "/labkit/"
    for learner in ("ada", "grace"):
        path = credentials_path("class1", learner, tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
        assert f'learner = "{learner}"' in path.read_text()
    shown = str(report) + report._repr_markdown_() + json.dumps(report.to_dict())
    assert len(_secrets(tmp_path)) == 2 and not any(secret in shown for secret in _secrets(tmp_path))


def test_create_again_issues_no_second_key_and_refuses_a_stale_file(account, tmp_path) -> None:
    learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    again = learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    assert [r.result for r in again.rows] == ["exists"] and set(again.policies.values()) == {"up to date"}
    assert len(account.client("iam").list_access_keys(UserName="class1-ada")["AccessKeyMetadata"]) == 1
    stale = credentials_path("class1", "grace", tmp_path)
    stale.write_text("an old key")
    with pytest.raises(LabkitError, match="already exists"):
        learners_create(lab="class1", names="ada,grace", backend=account, credentials_dir=tmp_path, yes=True)
    assert stale.read_text() == "an old key", "never overwritten"
    assert "class1-grace" not in {u["UserName"] for u in account.client("iam").list_users()["Users"]}


def test_a_changed_policy_file_becomes_the_new_default_version(account, tmp_path, monkeypatch) -> None:
    learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    from labkit.classroom import learners

    original = learners.render

    def newer(stem: str, partition: str = "aws") -> dict:
        document = original(stem, partition)
        document["Statement"][0]["Sid"] += "Renamed"
        return document

    monkeypatch.setattr(learners, "render", newer)
    report = learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    assert set(report.policies.values()) == {"updated to the file's version"}


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
    assert made == [], "refused before any backend was made"


def test_delete_never_touches_a_user_labkit_did_not_make(account, tmp_path) -> None:
    """A user under /labkit/LAB/ without the learner tags (someone else's) is neither listed for deletion nor deleted."""
    iam = account.client("iam")
    iam.create_user(UserName="class1-helper", Path="/labkit/class1/")
    learners_create(lab="class1", names="ada", backend=account, credentials_dir=tmp_path, yes=True)
    done = learners_delete(lab="class1", backend=account, credentials_dir=tmp_path, yes=True)
    assert [(r.learner, r.result) for r in done.rows] == [("ada", "deleted")]
    assert iam.get_user(UserName="class1-helper")["User"]["UserName"] == "class1-helper"
