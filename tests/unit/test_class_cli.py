"""`labkit class status | reset | check` from the command line, on strict in-process moto."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from labkit.cli import classroom as cli_class
from labkit.cli import options
from labkit.config import LabConfig
from labkit.lab.apply import apply
from labkit.lab.inventory import status


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="labkit")
    cli_class.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["class", *argv])
    return args.handler(args)


@pytest.fixture
def two_learners(strict_backend, monkeypatch):
    monkeypatch.setattr(cli_class, "backends_for", lambda backend, regions: [strict_backend])
    monkeypatch.setattr(options, "backend_for", lambda config: strict_backend)
    for learner, cidr in (("ann", "10.42.0.0/16"), ("ben", "10.43.0.0/16")):
        apply(LabConfig(learner=learner, readers=0, vpc_cidr=cidr), strict_backend, stream=io.StringIO())
    return strict_backend


def test_status_json_lists_both_learners_and_totals(two_learners, capsys):
    assert run("status", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert {row["learner"] for row in data["learners"]} == {"ann", "ben"}
    assert data["totals"]["resources"] == len(data["resources"]) > 20
    assert run("status", "--learner", "ben") == 0
    text = capsys.readouterr().out
    assert "learner ben" in text and "learner ann" not in text and "total: 1 learners" in text


def test_reset_is_a_dry_run_without_yes(two_learners, capsys):
    before = status(LabConfig(learner="ann"), two_learners)
    assert run("reset") == 0
    out = capsys.readouterr().out
    assert "dry run: would delete" in out and "run again with --yes" in out
    assert status(LabConfig(learner="ann"), two_learners).equals(before)


def test_reset_yes_deletes_the_chosen_learner_and_writes_the_report(two_learners, capsys, tmp_path):
    code = run("reset", "--yes", "--learner", "ben", "--report-dir", str(tmp_path), "--json")
    captured = capsys.readouterr()
    assert code == 0
    data = json.loads(captured.out)
    assert data["dry_run"] is False and {row["result"] for row in data["outcomes"]} == {"deleted"}
    assert "ben: vpc deleted" in captured.err, "progress goes to stderr with --json"
    assert status(LabConfig(learner="ben"), two_learners).empty
    assert not status(LabConfig(learner="ann"), two_learners).empty
    assert sorted(p.suffix for p in tmp_path.glob("class-reset-*")) == [".json", ".txt"]


def test_bad_flags_exit_2_naming_the_flag(two_learners, capsys):
    assert run("reset", "--older-than", "soon", "--yes") == 2
    assert "--older-than" in capsys.readouterr().err
    assert run("status", "--learner", "Ann Smith") == 2
    assert "learner" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("check", "--learners", "many")


def test_check_exits_1_when_the_class_does_not_fit(two_learners, capsys):
    assert run("check", "--learners", "1", "--instance-type", "t2.micro", "--json") == 0  # 4 + 1 of 5 vCPUs
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert run("check", "--learners", "9") == 1
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "vpc = 'default'" in out
