"""Each notebook's checkpoint says plainly whether the lab is where that step should leave it."""

from __future__ import annotations

import io

import pytest

from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.lab.destroy import destroy
from labkit.workbook.checkpoints import checkpoint


def test_checkpoints_follow_the_lab_through_its_stages(strict_backend):
    config = LabConfig()
    assert not checkpoint("network", config, strict_backend).ok
    apply(config, strict_backend, stream=io.StringIO(), only="network")
    assert checkpoint("network", config, strict_backend).ok
    database = checkpoint("database", config, strict_backend)
    assert not database.ok and any("cluster does not exist" in p for p in database.problems)
    apply(config, strict_backend, stream=io.StringIO())
    assert checkpoint("compute", config, strict_backend).ok
    assert "NOT ready" in repr(checkpoint("cleanup", config, strict_backend))
    destroy(config, strict_backend, stream=io.StringIO())
    assert repr(checkpoint("cleanup", config, strict_backend)) == "Checkpoint cleanup: ready."


def test_compute_checkpoint_names_a_blocked_database_port(strict_backend):
    config = LabConfig()
    ids = apply(config, strict_backend, stream=io.StringIO()).ids
    ec2 = strict_backend.client("ec2")
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [ids["sg-db"]]}])
    inbound = [r["SecurityGroupRuleId"] for r in rules["SecurityGroupRules"] if not r["IsEgress"]]
    ec2.revoke_security_group_ingress(GroupId=ids["sg-db"], SecurityGroupRuleIds=inbound)
    result = checkpoint("compute", config, strict_backend)
    assert not result.ok and any("cannot reach the writer" in p for p in result.problems)


def test_an_unknown_checkpoint_is_refused():
    with pytest.raises(ConfigError) as error:
        checkpoint("everything")
    assert error.value.field == "step"
