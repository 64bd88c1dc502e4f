"""The break-and-fix exercise: revoke the database rule, see the path blocked with its fix, apply it."""

from __future__ import annotations

import io

import pytest

from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.security import can_reach, revoke_rules, security_groups


def test_break_then_fix_the_database_rule(strict_backend):
    config = LabConfig()
    apply(config, strict_backend, stream=io.StringIO())
    assert can_reach("instance", "writer", 3306, config, strict_backend).reachable
    removed = revoke_rules(config, "sg-db", 3306, backend=strict_backend)
    assert list(removed["peer"]) == ["auroralab-learner1-sg-app"]
    blocked = can_reach("instance", "writer", 3306, config, strict_backend)
    assert not blocked.reachable and blocked.fixes
    blocked.fixes[0].apply(strict_backend)
    assert can_reach("instance", "writer", 3306, config, strict_backend).reachable
    inbound = security_groups(config, strict_backend).query("direction == 'ingress' and ports == '3306'")
    assert list(inbound["peer"]) == ["auroralab-learner1-sg-app"], "the fix restores a group reference, not a CIDR"


def test_revoking_a_rule_that_does_not_exist_says_what_to_look_at(strict_backend):
    config = LabConfig()
    apply(config, strict_backend, stream=io.StringIO(), only="network")
    with pytest.raises(ConfigError) as error:
        revoke_rules(config, "sg-app", 22, backend=strict_backend)
    assert error.value.field == "group" and "security_groups" in str(error.value)
