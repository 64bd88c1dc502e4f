"""One module finds the lab's cluster and instance for tunnels, SQL, endpoints and the benchmark; each lookup
says what is missing and how to create it, and an instance on its way out is not the lab's instance."""

from __future__ import annotations

import pytest
from support.clusters import ENGINE
from support.labs import Lab, build_lab

from labkit.access.lookup import cluster_identifier, db_instance, find_instance, lab_cluster, running_instance
from labkit.errors import LabkitError


@pytest.fixture
def lab(region) -> Lab:
    return build_lab(region)


def test_the_lab_cluster_and_instance_are_found_by_name_and_tags(lab: Lab):
    cluster = lab_cluster(lab.config, lab.backend)
    assert cluster["DBClusterIdentifier"] == cluster_identifier(lab.config) == lab.cluster_id
    assert cluster["Engine"] == ENGINE.name  # what the SQL client chooses its dialect by
    assert running_instance(lab.backend, config=lab.config) == lab.instance_id
    assert running_instance(lab.backend, instance_id=lab.instance_id) == lab.instance_id
    assert db_instance(lab.backend, lab.writer)["DBClusterIdentifier"] == lab.cluster_id
    assert find_instance(lab.backend, lab.instance_id)["InstanceId"] == lab.instance_id


def test_a_missing_cluster_says_how_to_create_it(region):
    lab = build_lab(region, database=False)
    with pytest.raises(LabkitError) as missing:
        lab_cluster(lab.config, lab.backend)
    assert missing.value.field == "cluster" and "02_database" in missing.value.fix


def test_a_missing_instance_says_how_to_create_it(region):
    lab = build_lab(region, instance=False)
    with pytest.raises(LabkitError) as missing:
        running_instance(lab.backend, config=lab.config)
    assert missing.value.field == "instance" and "03_compute" in missing.value.fix
    with pytest.raises(LabkitError) as unknown:
        running_instance(lab.backend, instance_id="i-0123456789abcdef0")
    assert unknown.value.field == "instance" and "i-0123456789abcdef0" in unknown.value.message


def test_a_terminated_instance_is_no_longer_the_labs(lab: Lab):
    lab.ec2.terminate_instances(InstanceIds=[lab.instance_id])
    with pytest.raises(LabkitError):
        running_instance(lab.backend, config=lab.config)
    assert find_instance(lab.backend, lab.instance_id)["State"]["Name"] == "terminated"  # still described


def test_an_unknown_instance_id_is_none_not_an_error(region):
    assert find_instance(region, "i-0123456789abcdef0") is None
