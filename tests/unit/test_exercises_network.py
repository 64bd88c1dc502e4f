"""01's exercises against wrong states: the rules between the app and database tiers are the learner's to write,
apply leaves them out when asked (and a later notebook's apply does not write them behind the learner's back),
and each check says what is wrong in the live rules, with the lint's reason for a rule by address range."""

from __future__ import annotations

import io

import pytest

import labkit
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.workbook.checkpoints import begin, checkpoint
from labkit.workbook.exercises import exercise

CONFIG = LabConfig()


@pytest.fixture
def network(strict_backend):
    """The network stage as 01's apply cell leaves it: both groups, neither rule between them."""
    return apply(CONFIG, strict_backend, stream=io.StringIO(), only="network", leave_exercises=True).ids


def _inbound_3306(backend, group_id):
    rules = backend.client("ec2").describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return [r for r in rules["SecurityGroupRules"] if r.get("FromPort") == 3306 and r.get("ToPort") == 3306]


def _problems(backend, exercise_id="01.db-ingress"):
    return "\n".join(exercise(exercise_id, CONFIG, backend).evaluate().problems)


def test_the_notebooks_apply_leaves_both_rules_and_a_later_stage_does_not_write_them(strict_backend, network):
    assert _inbound_3306(strict_backend, network["sg-db"]) == _inbound_3306(strict_backend, network["sg-app"]) == []
    apply(CONFIG, strict_backend, stream=io.StringIO(), only="database", leave_exercises=True)
    assert _inbound_3306(strict_backend, network["sg-db"]) == [], "02's apply leaves the learner's rule alone"
    caught_up = apply(CONFIG, strict_backend, stream=io.StringIO(), only="network")
    assert "sg-db" in caught_up.completed, "without leave_exercises (labkit up, a catch-up) apply writes both"
    assert len(_inbound_3306(strict_backend, network["sg-db"])) == 1
    assert len(_inbound_3306(strict_backend, network["sg-app"])) == 1


def test_db_ingress_names_each_wrong_rule(strict_backend, network):
    assert "sg-db has no inbound rule for tcp 3306 from sg-app yet" in _problems(strict_backend)
    labkit.authorize_ingress(CONFIG, "sg-db", 3307, source_group="sg-app", backend=strict_backend)
    assert "sg-db admits tcp 3307 from auroralab-learner1-sg-app" in _problems(strict_backend)
    assert "but the database listens on tcp 3306" in _problems(strict_backend)


def test_a_cidr_rule_fails_db_ingress_and_the_lint_says_why(strict_backend, network):
    labkit.authorize_ingress(CONFIG, "sg-db", 3306, cidr="10.42.0.0/16", backend=strict_backend)
    said = _problems(strict_backend)
    assert "sg-db admits tcp 3306 from 10.42.0.0/16" in said and "an address range, not the app group" in said
    assert "lint, medium: MySQL (3306) allowed by CIDR, not by security group" in said
    assert "a group reference admits exactly the members of sg-app" in said
    labkit.authorize_ingress(CONFIG, "sg-db", 3306, source_group="sg-app", backend=strict_backend)
    said = _problems(strict_backend)
    assert "no inbound rule" not in said and "10.42.0.0/16" in said, "the group rule does not excuse the CIDR one"
    labkit.revoke_rules(CONFIG, group="sg-db", port=3306, backend=strict_backend)  # what the message says to do
    labkit.authorize_ingress(CONFIG, "sg-db", 3306, source_group="sg-app", backend=strict_backend)
    assert exercise("01.db-ingress", CONFIG, strict_backend).evaluate().passed


def test_the_world_and_other_groups_and_all_ports_fail_db_ingress(strict_backend, network):
    ec2 = strict_backend.client("ec2")
    labkit.authorize_ingress(CONFIG, "sg-db", 3306, cidr="0.0.0.0/0", backend=strict_backend)
    assert "high: MySQL (3306) open to the internet" in _problems(strict_backend)
    labkit.revoke_rules(CONFIG, group="sg-db", port=3306, backend=strict_backend)
    everything = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": network["sg-app"]}]}]
    ec2.authorize_security_group_ingress(GroupId=network["sg-db"], IpPermissions=everything)
    assert "sg-db admits tcp all from auroralab-learner1-sg-app" in _problems(strict_backend)
    assert "more than the database needs, open only 3306" in _problems(strict_backend)
    own = [{"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "UserIdGroupPairs": [{"GroupId": network["sg-db"]}]}]
    ec2.authorize_security_group_ingress(GroupId=network["sg-db"], IpPermissions=own)
    assert "sg-db also admits tcp 3306 from auroralab-learner1-sg-db" in _problems(strict_backend)


def test_app_egress_wants_the_database_group_not_an_address_range(strict_backend, network):
    assert "sg-app has no outbound rule for tcp 3306 to sg-db yet" in _problems(strict_backend, "01.app-egress")
    labkit.authorize_egress(CONFIG, "sg-app", 3306, cidr="0.0.0.0/0", backend=strict_backend)
    said = _problems(strict_backend, "01.app-egress")
    assert "sg-app sends tcp 3306 to 0.0.0.0/0" in said and "could send the database's rows to any server" in said
    assert 'labkit.revoke_rules(config, group="sg-app", port=3306, direction="egress")' in said
    labkit.revoke_rules(CONFIG, group="sg-app", port=3306, direction="egress", backend=strict_backend)
    strict_backend.client("ec2").authorize_security_group_egress(
        GroupId=network["sg-app"], IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    assert "sg-app sends all traffic to 0.0.0.0/0" in _problems(strict_backend, "01.app-egress")


def test_the_checkpoint_and_the_next_notebooks_say_which_exercise_is_missing(strict_backend, network, capsys):
    result = checkpoint("network", CONFIG, strict_backend)
    assert not result.ok
    assert any(
        p.startswith("exercise 01.db-ingress (01_network) is not done: sg-db has no inbound") for p in result.problems
    )
    assert any(p.startswith("exercise 01.app-egress (01_network) is not done") for p in result.problems)
    begin("database", CONFIG, strict_backend)
    said = capsys.readouterr().out
    assert "\nready for 02_database" in said and "note: exercise 01.db-ingress (01_network) is not done" in said
    labkit.authorize_ingress(CONFIG, "sg-db", 3306, source_group="sg-app", backend=strict_backend)
    labkit.authorize_egress(CONFIG, "sg-app", 3306, destination_group="sg-db", backend=strict_backend)
    assert checkpoint("network", CONFIG, strict_backend).ok
    begin("database", CONFIG, strict_backend)
    assert "note:" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"group": "sg-db", "port": 3306}, "source_group"),
        ({"group": "sg-db", "port": 3306, "source_group": "sg-app", "cidr": "10.0.0.0/8"}, "source_group"),
        ({"group": "sg-db", "port": 3306, "cidr": "10.0.0.0/33"}, "cidr"),
        ({"group": "sg-db", "port": 70000, "source_group": "sg-app"}, "port"),
        ({"group": "sg-web", "port": 3306, "source_group": "sg-app"}, "group"),
        ({"group": "sg-db", "port": 3306, "source_group": ""}, "source_group"),
    ],
)
def test_a_bad_rule_is_refused_with_the_field_and_the_fix(strict_backend, network, call, field):
    with pytest.raises(ConfigError) as error:
        labkit.authorize_ingress(CONFIG, backend=strict_backend, **call)
    assert error.value.field == field and error.value.fix
    assert _inbound_3306(strict_backend, network["sg-db"]) == []


def test_the_same_rule_twice_changes_nothing_and_says_so(strict_backend, network, capsys):
    first = labkit.authorize_ingress(CONFIG, "sg-db", 3306, source_group="sg-app", backend=strict_backend)
    again = labkit.authorize_ingress(CONFIG, "sg-db", 3306, source_group="sg-app", backend=strict_backend)
    assert "already has this ingress rule: nothing changed" in capsys.readouterr().out
    assert first.to_dict() == again.to_dict() and list(first["peer"]) == ["auroralab-learner1-sg-app"]
    [rule] = _inbound_3306(strict_backend, network["sg-db"])
    assert {"Key": "labkit:lab", "Value": "auroralab"} in rule["Tags"], "the learner's rule is tagged like the lab's"
