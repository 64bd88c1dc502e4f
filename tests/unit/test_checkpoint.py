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


def test_the_network_checkpoint_is_not_ready_while_the_database_rule_is_revoked(strict_backend):
    """Issue 23: it checked that the groups exist, not what they allow."""
    from labkit.security import revoke_rules

    config = LabConfig()
    apply(config, strict_backend, stream=io.StringIO(), only="network")
    revoke_rules(config, "sg-db", 3306, backend=strict_backend)
    result = checkpoint("network", config, strict_backend)
    assert not result.ok and any("does not allow tcp 3306 from the app group" in p for p in result.problems)


def test_an_unknown_checkpoint_is_refused():
    with pytest.raises(ConfigError) as error:
        checkpoint("everything")
    assert error.value.field == "step"


def test_the_first_cell_says_in_one_line_which_notebook_to_run_first(strict_backend, capsys):
    """Skipping ahead: each notebook's first cell names every notebook to run first, or the fastest catch-up."""
    from labkit.workbook.checkpoints import begin, where_to_start

    config = LabConfig()
    line = where_to_start("compute", config, strict_backend)
    assert line.startswith("not ready for 03_compute") and "\n" not in line
    assert "the network and database stages are missing" in line and "run 01_network and 02_database first" in line
    sql = where_to_start("sql", config, strict_backend)
    assert "run 01_network, 02_database and 03_compute first" in sql and "`labkit.apply(config)`" in sql
    assert "create_schema" in where_to_start("benchmark", config, strict_backend)
    database = where_to_start("database", config, strict_backend)
    assert 'this notebook\'s `labkit.apply(config, only="database")` builds the network stage too' in database
    apply(config, strict_backend, stream=io.StringIO(), only="network")
    assert "run 02_database first" in where_to_start("compute", config, strict_backend)
    assert where_to_start("database", config, strict_backend) == (
        "ready for 02_database: what the earlier notebooks build is in place"
    )
    assert begin("network", config, strict_backend) is config
    assert capsys.readouterr().out.splitlines()[-1] == "ready for 01_network"


def test_a_notebook_offers_its_own_apply_only_for_the_stages_it_builds(strict_backend):
    """Issue 23: 03 opened before 02 said its own apply "builds it too"; it builds no database."""
    from labkit.workbook.checkpoints import where_to_start

    config = LabConfig()
    line = where_to_start("compute", config, strict_backend)
    assert "builds it too" not in line and "builds the database stage too" not in line
    assert (
        "`labkit.apply(config)` builds them all (this notebook's own apply does not build the database stage)" in line
    )
    apply(config, strict_backend, stream=io.StringIO(), only="network")
    line = where_to_start("compute", config, strict_backend)
    assert "the database stage is missing" in line and "does not build the database stage" in line


def test_the_first_cell_names_the_lab_and_the_learner_it_uses(strict_backend, capsys, lab_home):
    """Issue 23: a notebook used whatever lab.toml said, silently."""
    from labkit.workbook.checkpoints import begin

    begin("network", backend=strict_backend)
    assert "lab auroralab, learner learner1 on sandbox in us-east-1 (the defaults: no lab saved yet" in (
        capsys.readouterr().out
    )
    LabConfig(learner="ada").save()
    assert begin("network", backend=strict_backend).learner == "ada"
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"lab auroralab, learner ada on sandbox in us-east-1 (from {lab_home / 'lab.toml'})"


def test_the_first_cell_says_when_the_sandbox_is_not_running(lab_home, monkeypatch):
    from labkit.workbook.checkpoints import where_to_start

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    line = where_to_start("database", LabConfig(backend="sandbox"))
    assert "the sandbox is not running" in line and "run 00_setup first" in line


def test_cleanup_lists_the_other_labs_of_this_lab_name_or_learner_that_still_have_resources(strict_backend):
    """Issue 23: `labkit up --learner x` built a second lab; 06 said "nothing is left" while it ran on."""
    from labkit.workbook.leftovers import other_labs

    mine = LabConfig()
    apply(LabConfig(learner="x", readers=0), strict_backend, stream=io.StringIO(), only="network")
    apply(LabConfig(lab="otherlab", vpc_cidr="10.43.0.0/16"), strict_backend, stream=io.StringIO(), only="network")
    apply(LabConfig(lab="strangers", learner="y", vpc_cidr="10.44.0.0/16"), strict_backend, stream=io.StringIO(),
          only="network")  # fmt: skip
    apply(mine, strict_backend, stream=io.StringIO(), only="network")
    destroy(mine, strict_backend, stream=io.StringIO())
    found = other_labs(mine, strict_backend)
    rows = found.frame.set_index(["lab", "learner"])
    assert set(rows.index) == {("auroralab", "x"), ("otherlab", "learner1")}, "not mine, not strangers'"
    assert rows.loc[("auroralab", "x"), "relation"] == "same lab, another learner name"
    assert rows.loc[("auroralab", "x"), "delete with"] == "labkit down --lab auroralab --learner x --region us-east-1"
    assert "2 other labs of lab auroralab or learner learner1 still have resources in us-east-1" in repr(found)
    for config in (LabConfig(learner="x"), LabConfig(lab="otherlab")):
        destroy(config, strict_backend, stream=io.StringIO())
    assert other_labs(mine, strict_backend).headline() == (
        "no other lab of lab auroralab or learner learner1 has resources in us-east-1"
    )


def test_the_sql_and_benchmark_notebooks_say_up_front_that_a_lab_without_reader_has_no_reader_lessons(
    strict_backend, capsys
):
    from labkit.workbook.checkpoints import begin

    begin("sql", LabConfig(readers=0), strict_backend)
    assert "note: readers = 0: the cluster gets no replica" in capsys.readouterr().out
    begin("sql", LabConfig(), strict_backend)
    assert "readers = 0" not in capsys.readouterr().out
