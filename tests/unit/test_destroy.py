"""destroy(): reverse order, bounded retries, only this lab and learner, then a verify that misses nothing."""

from __future__ import annotations

import io
import json

import pytest

from labkit.aws.patience import Timing
from labkit.aws.tags import current_node, lab_tags
from labkit.config import LabConfig
from labkit.lab.apply import StepsFailed, apply
from labkit.lab.destroy import destroy
from labkit.lab.inventory import status, verify

FAST = Timing(poll_seconds=0.01, retry_attempts=5, retry_first_delay=0.01, retry_max_delay=0.02)


def test_destroy_removes_everything_in_an_order_aws_accepts(strict_backend):
    config = LabConfig(readers=2, key_pair=True, ssh_cidr="203.0.113.7", deletion_protection=True)
    apply(config, strict_backend)
    remaining = destroy(config, strict_backend)
    assert remaining.empty
    assert list(remaining.columns) == ["what", "node", "id", "state", "detail"]
    assert strict_backend.strict.refusals == [], "the strict layer refused nothing: the order was right"
    assert verify(config, strict_backend).empty


def test_destroy_of_nothing_is_quiet_and_clean(strict_backend):
    shown = io.StringIO()
    assert destroy(LabConfig(), strict_backend, stream=shown).empty
    assert "nothing is left" in shown.getvalue() and "0 resources remain" not in shown.getvalue()


def test_verify_lists_what_the_tagging_api_misses(strict_backend):
    config = LabConfig(key_pair=True)
    apply(config, strict_backend)
    found = set(verify(config, strict_backend)["what"])
    assert {
        "DB subnet group",
        "Key pair",
        "Aurora cluster",
        "EC2 instance",
        "IAM role",
        "Secrets Manager secret",
    } <= found
    tagged = strict_backend.client("resourcegroupstaggingapi").get_resources(
        TagFilters=[{"Key": "labkit:lab", "Values": ["auroralab"]}]
    )["ResourceTagMappingList"]
    arns = " ".join(t["ResourceARN"] for t in tagged)
    assert ":subgrp:" not in arns and "key-pair" not in arns, "the tagging API alone would miss these"


def test_another_learner_and_untagged_resources_survive(strict_backend):
    ec2, iam = strict_backend.client("ec2"), strict_backend.client("iam")
    mine, theirs = LabConfig(), LabConfig(learner="learner2", vpc_cidr="10.43.0.0/16")
    apply(theirs, strict_backend)
    apply(mine, strict_backend)
    other_tags = [t for t in lab_tags("otherlab", "learner1", "vpc") if t["Key"] != "labkit:lab"]
    untagged_vpc = ec2.create_vpc(
        CidrBlock="10.50.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [*other_tags, {"Key": "labkit:lab", "Value": "x"}]}],
    )["Vpc"]["VpcId"]
    strict_backend.strict.require_tags = False  # the account also holds things labkit never made
    plain_group = ec2.create_security_group(GroupName="handmade", Description="not a lab group", VpcId=untagged_vpc)
    iam.create_role(RoleName="auroralab-learner1-handmade", AssumeRolePolicyDocument="{}")
    their_status = status(theirs, strict_backend)

    assert destroy(mine, strict_backend).empty
    assert status(theirs, strict_backend).equals(their_status)
    assert ec2.describe_security_groups(GroupIds=[plain_group["GroupId"]])["SecurityGroups"]
    assert ec2.describe_vpcs(VpcIds=[untagged_vpc])["Vpcs"]
    assert iam.get_role(RoleName="auroralab-learner1-handmade")["Role"]
    assert ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    assert destroy(theirs, strict_backend).empty


def test_destroy_retries_a_group_still_held_by_a_terminating_instance(strict_backend):
    strict_backend.strict.linger_after_terminate = 3
    config = LabConfig()
    apply(config, strict_backend)
    assert destroy(config, strict_backend, timing=FAST).empty
    assert strict_backend.strict.refusals.count(("DeleteSecurityGroup", "DependencyViolation")) == 3


def test_destroy_gives_up_within_its_bound_and_reports_what_remains(strict_backend):
    strict_backend.strict.linger_after_terminate = 1000
    config = LabConfig()
    apply(config, strict_backend)
    with pytest.raises(StepsFailed) as caught:
        destroy(config, strict_backend, timing=FAST)
    assert caught.value.field == "sg-app"
    assert "DependencyViolation" in caught.value.message
    assert set(caught.value.remaining["node"]) == {"sg-app", "vpc"}
    assert strict_backend.strict.refusals.count(("DeleteSecurityGroup", "DependencyViolation")) == FAST.retry_attempts
    strict_backend.strict.lingering_groups.clear()
    assert destroy(config, strict_backend).empty, "a second destroy finishes the job"


def test_destroy_removes_what_the_config_no_longer_names_and_the_lab_comes_back(strict_backend):
    ids = apply(LabConfig(readers=3), strict_backend).ids
    rds = strict_backend.client("rds")
    rds.create_db_cluster_snapshot(DBClusterIdentifier=ids["cluster"], DBClusterSnapshotIdentifier="learner-snapshot")
    config = LabConfig(readers=1)
    assert {"Cluster snapshot", "Aurora instance"} <= set(verify(config, strict_backend)["what"])
    assert destroy(config, strict_backend).empty, "extra readers and the learner's snapshot are gone too"
    assert rds.describe_db_cluster_snapshots()["DBClusterSnapshots"] == []
    again = apply(config, strict_backend).ids
    assert again["cluster"] == ids["cluster"] and again["vpc"] != ids["vpc"]


def test_the_remaining_table_serialises_for_the_cli(strict_backend):
    config = LabConfig()
    apply(config, strict_backend)
    records = status(config, strict_backend).to_dict(orient="records")
    assert json.loads(json.dumps(records))[0].keys() == {"what", "node", "id", "state", "detail"}


def test_status_lists_a_type_in_node_order_whatever_the_creation_order(strict_backend):
    config = LabConfig()
    apply(config, strict_backend)
    subnets = status(config, strict_backend).query("what == 'Subnet'")["node"].tolist()
    assert subnets == sorted(subnets) and len(subnets) == 3


def test_a_lab_made_when_instances_were_named_by_role_is_found_and_deleted(strict_backend):
    """Before role-neutral names, the DB instances were tagged db-writer and db-reader-N: such a lab is still
    seen as db-1, db-2 (so apply creates nothing twice) and deleted whole."""
    config = LabConfig(readers=2)
    apply(config, strict_backend)
    rds = strict_backend.client("rds")
    for instance in rds.describe_db_instances()["DBInstances"]:
        node = {t["Key"]: t["Value"] for t in instance["TagList"]}["labkit:node"]
        legacy = "db-writer" if node == "db-1" else f"db-reader-{int(node.split('-')[1]) - 1}"
        rds.add_tags_to_resource(ResourceName=instance["DBInstanceArn"], Tags=[{"Key": "labkit:node", "Value": legacy}])
    assert {"db-1", "db-2", "db-3"} <= set(status(config, strict_backend)["node"])
    assert destroy(config, strict_backend).empty
    assert verify(config, strict_backend).empty


def test_legacy_node_names_map_to_the_role_neutral_ones():
    assert [current_node(n) for n in ("db-writer", "db-reader-1", "db-reader-14", "db-subnet-group", "db-2")] == [
        "db-1",
        "db-2",
        "db-15",
        "db-subnet-group",
        "db-2",
    ]
