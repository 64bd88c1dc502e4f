"""Staged apply: each notebook builds one stage and exactly what that stage depends on."""

from __future__ import annotations

import io

import pytest

from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.lab.graph import lab_graph, stage_closure


def test_network_stage_has_no_database_or_compute():
    keep = stage_closure(lab_graph(LabConfig()), "network")
    assert {"vpc", "sg-app", "sg-db", "route-table-public"} <= keep
    assert not keep & {"cluster", "db-1", "instance", "iam-role"}


def test_database_stage_brings_its_network_but_not_compute():
    keep = stage_closure(lab_graph(LabConfig(readers=2)), "database")
    assert {"cluster", "db-1", "db-2", "db-3", "db-subnet-group", "sg-db"} <= keep
    assert not keep & {"instance", "iam-role", "instance-profile"}


def test_unknown_stage_is_refused_before_any_call():
    with pytest.raises(ConfigError) as error:
        stage_closure(lab_graph(LabConfig()), "everything")
    assert error.value.field == "only"


def test_staged_apply_creates_only_the_stage(moto_backend):
    config = LabConfig(learner="staged")
    result = apply(config, moto_backend, stream=io.StringIO(), only="network")
    assert "vpc" in result.created and "sg-db" in result.created
    assert moto_backend.client("rds").describe_db_clusters()["DBClusters"] == []
    assert moto_backend.client("ec2").describe_instances()["Reservations"] == []
    second = apply(config, moto_backend, stream=io.StringIO(), only="database")
    assert "cluster" in second.created and "vpc" not in second.created
