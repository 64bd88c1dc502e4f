"""`labkit plan | up | down | status`: flags, config files, JSON, confirmation, and clean failures."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from labkit.cli import lab as cli_lab
from labkit.cli import main as labkit_cli
from labkit.cli import options
from labkit.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from labkit.config import LabConfig


@pytest.fixture
def cli(strict_backend, monkeypatch):
    """Run a labkit subcommand against the strict in-process backend; return its exit code."""
    monkeypatch.setattr(options, "backend_for", lambda config: strict_backend)
    return lambda *argv: labkit_cli.main(list(argv))


def lab_vpcs(backend) -> list:
    return backend.client("ec2").describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["labkit:lab"]}])["Vpcs"]


BAD_FLAGS = [
    (["--readers", "99"], "readers"),
    (["--readers", "two"], "readers"),
    (["--db-instance-class", "db.t3.small"], "db_instance_class"),
    (["--ssh-cidr", "0.0.0.0/0"], "ssh_cidr"),
    (["--region", "moon-1"], "region"),
    (["--learner", "Bob_Smith"], "learner"),
]


def test_a_bad_value_exits_non_zero_with_the_message_no_traceback_and_nothing_created(cli, strict_backend, capsys):
    for flags, field in BAD_FLAGS:
        code = cli("up", "--yes", *flags)
        out, err = capsys.readouterr()
        assert code == EXIT_BAD_INPUT, flags
        assert err.startswith(f"error: {field}: "), err
        assert "fix:" in err and "Traceback" not in err + out
    assert lab_vpcs(strict_backend) == []
    assert strict_backend.client("iam").list_roles()["Roles"] == []


def test_plan_json_is_machine_readable_and_changes_nothing(cli, strict_backend, capsys):
    assert cli("plan", "--json", "--readers", "2") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["readers"] == 2
    assert {s["action"] for s in data["steps"]} == {"create"}
    assert data["schedule"]["critical_path"] == 6 and data["schedule"]["sequential"] == 17
    assert lab_vpcs(strict_backend) == []


def test_plan_text_shows_the_banner_the_table_and_the_schedule(cli, capsys):
    assert cli("plan") == 0
    out = capsys.readouterr().out
    assert "account=123456789012 region=us-east-1" in out
    assert "16 to create" in out and "cluster" in out
    assert "6 waits on the critical path instead of 16 in a row" in out


def test_flags_of_up_leave_the_saved_lab_alone_and_say_so(cli, capsys, lab_home):
    """Issue 23: `labkit up --learner X --readers 0` rewrote lab.toml, and every notebook then used lab X."""
    LabConfig(learner="ada").save()
    before = (lab_home / "lab.toml").read_text()
    assert cli("up", "--yes", "--learner", "x", "--readers", "0") == 0
    out = capsys.readouterr().out
    assert (lab_home / "lab.toml").read_text() == before
    assert "learner='x', readers=0" in out and "(lab auroralab, learner ada)" in out and "--save" in out


def test_up_status_down_round_trip_with_json(cli, strict_backend, capsys, lab_home):
    assert cli("up", "--yes", "--json", "--learner", "carol") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert len(result["created"]) == 16
    assert "changes go to:" in captured.err, "progress goes to stderr when --json is given"
    assert not (lab_home / "lab.toml").exists(), "flags do not change the saved lab"
    assert "add --save to make this the saved lab" in captured.err

    assert cli("status", "--json") == 0  # the saved lab (the defaults here) has nothing
    assert json.loads(capsys.readouterr().out) == []
    assert cli("up", "--yes", "--json", "--learner", "carol", "--save") == 0  # asked: carol is the saved lab now
    assert LabConfig.load(lab_home / "lab.toml").learner == "carol"
    capsys.readouterr()

    assert cli("status", "--json") == 0  # the saved config names carol now
    rows = json.loads(capsys.readouterr().out)
    assert {row["node"] for row in rows} >= {"vpc", "cluster", "instance"}

    assert cli("down", "--yes") == 0
    assert "verified: no resource of this lab and learner is left" in capsys.readouterr().out
    assert lab_vpcs(strict_backend) == []


def test_flags_override_the_config_file(cli, capsys, tmp_path):
    path = tmp_path / "class.toml"
    LabConfig(learner="dave", readers=3).save(path)
    assert cli("plan", "--json", "--config", str(path), "--readers", "0") == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert (config["learner"], config["readers"]) == ("dave", 0)


def test_up_without_yes_and_without_a_terminal_refuses(cli, strict_backend, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli("up") == EXIT_FAILED
    err = capsys.readouterr().err
    assert "without confirmation" in err and "--yes" in err
    assert lab_vpcs(strict_backend) == []


def test_register_adds_the_four_commands_with_their_flags():
    parser = argparse.ArgumentParser(prog="labkit")
    cli_lab.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["down", "--db-instance-class", "db.r6g.large", "--no-key-pair", "--yes"])
    assert args.handler is cli_lab.run_down
    assert (args.db_instance_class, args.key_pair, args.yes, args.json) == ("db.r6g.large", False, True, False)
    for command in ("plan", "up", "status"):
        assert parser.parse_args([command]).handler.__name__ == f"run_{command}"


def test_the_labkit_command_runs_these_subcommands(cli, capsys):
    assert labkit_cli.main(["plan", "--json", "--readers", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["readers"] == 0
    assert labkit_cli.main(["up", "--yes", "--readers", "16"]) == EXIT_BAD_INPUT
    assert "error: readers:" in capsys.readouterr().err
