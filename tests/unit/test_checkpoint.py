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


def test_the_first_cell_says_in_one_line_which_notebook_to_run_first(strict_backend, capsys):
    """Skipping ahead: each notebook's first cell names the earliest notebook to run, or the fastest catch-up."""
    from labkit.workbook.checkpoints import begin, where_to_start

    config = LabConfig()
    line = where_to_start("compute", config, strict_backend)
    assert line.startswith("not ready for 03_compute") and "run 01_network first" in line
    assert 'labkit.apply(config, only="compute")' in line and "\n" not in line
    sql = where_to_start("sql", config, strict_backend)
    assert "run 01_network first" in sql and "`labkit.apply(config)`" in sql
    assert "create_schema" in where_to_start("benchmark", config, strict_backend)
    apply(config, strict_backend, stream=io.StringIO(), only="network")
    assert "run 02_database first" in where_to_start("compute", config, strict_backend)
    assert where_to_start("database", config, strict_backend) == (
        "ready for 02_database: what the earlier notebooks build is in place"
    )
    assert begin("network", config, strict_backend) is config
    assert capsys.readouterr().out == "ready for 01_network\n"


def test_the_first_cell_says_when_the_sandbox_is_not_running(lab_home, monkeypatch):
    from labkit.workbook.checkpoints import where_to_start

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    line = where_to_start("database", LabConfig(backend="sandbox"))
    assert "the sandbox is not running" in line and "run 00_setup first" in line
