"""`labkit rules`, `labkit lint` and `labkit reach`: output and exit codes, through the real parser."""

from __future__ import annotations

import pytest
from support.labs import Lab, build_lab

from labkit.cli.main import main
from labkit.security.tables import COLUMNS


@pytest.fixture
def lab(region, monkeypatch, tmp_path) -> Lab:
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))  # no lab.toml: defaults plus the flags below
    monkeypatch.setattr("labkit.security.snapshot.get_backend", lambda *args, **kwargs: region)
    return build_lab(region)


def _run(lab: Lab, *args: str) -> int:
    return main([*args, "--lab", lab.config.lab, "--learner", lab.config.learner])


def test_rules_prints_the_table(lab: Lab, capsys) -> None:
    assert _run(lab, "rules") == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == COLUMNS
    assert lab.db_rule_id in out


def test_lint_exits_zero_when_clean_and_one_on_a_high_finding(lab: Lab, capsys) -> None:
    assert _run(lab, "lint") == 0
    assert "lint: no findings" in capsys.readouterr().out

    lab.ec2.authorize_security_group_ingress(
        GroupId=lab.app_sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    assert _run(lab, "lint") == 1
    assert "HIGH" in capsys.readouterr().out


def test_reach_exits_zero_when_reachable_and_one_when_blocked(lab: Lab, capsys) -> None:
    assert _run(lab, "reach", "instance", "writer", "--port", "3306") == 0
    assert "reachable" in capsys.readouterr().out

    lab.ec2.revoke_security_group_ingress(GroupId=lab.db_sg, SecurityGroupRuleIds=[lab.db_rule_id])
    assert _run(lab, "reach", "instance", "reader") == 1
    out = capsys.readouterr().out
    assert "BLOCKED at security group ingress" in out
    assert "authorize-security-group-ingress" in out


def test_reach_to_an_unknown_name_is_a_user_error(lab: Lab, capsys) -> None:
    assert _run(lab, "reach", "instance", "nowhere.example.com") == 2
    assert "unknown endpoint" in capsys.readouterr().err
