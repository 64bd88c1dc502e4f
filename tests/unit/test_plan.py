"""plan(): reads the account, changes nothing, and schedules the EC2 branch beside the cluster, not after it."""

from __future__ import annotations

import threading
import time

import pytest

from labkit.aws.patience import Timing
from labkit.aws.tags import NODE_CLUSTER, NODE_FIRST_DB, NODE_IAM_ROLE, NODE_INSTANCE, NODE_INSTANCE_PROFILE
from labkit.config import LabConfig
from labkit.display import Progress
from labkit.errors import ConfigError, LabkitError
from labkit.lab.apply import apply
from labkit.lab.graph import critical_path, lab_graph, waves
from labkit.lab.plan import CREATE, NOTHING, USE, plan

DATABASE_NODES = {"db-subnet-group", NODE_CLUSTER, NODE_FIRST_DB, "db-2"}
FAST = Timing(poll_seconds=0.02, retry_attempts=4, retry_first_delay=0.01, retry_max_delay=0.05)


def changing_calls(backend) -> list[str]:
    """Record every AWS call that is not a read, from now on."""
    calls: list[str] = []

    def record(event_name: str, **_) -> None:
        operation = event_name.split(".")[-1]
        if not operation.startswith(("Describe", "List", "Get")):
            calls.append(operation)

    backend.session().events.register("before-parameter-build", record)
    return calls


def ancestors(depends_on: dict[str, tuple[str, ...]], node: str) -> set[str]:
    found: set[str] = set()
    stack = list(depends_on[node])
    while stack:
        parent = stack.pop()
        if parent not in found:
            found.add(parent)
            stack.extend(depends_on.get(parent, ()))
    return found


def test_plan_of_an_empty_account_creates_everything_and_changes_nothing(strict_backend):
    calls = changing_calls(strict_backend)
    result = plan(LabConfig(), strict_backend)
    assert {s.action for s in result.steps} == {CREATE}
    assert len(result.steps) == 16
    assert calls == [], "plan must only read"
    assert not strict_backend.client("ec2").describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["labkit:lab"]}])[
        "Vpcs"
    ]
    frame = result.to_frame()
    assert list(frame.columns) == ["wave", "node", "what", "name", "depends on", "exists", "action", "detail"]
    assert frame.loc[frame.node == NODE_CLUSTER, "name"].item() == "auroralab-learner1-cluster"


def test_plan_renders_a_mermaid_diagram_with_every_node_and_edge(strict_backend):
    result = plan(LabConfig(readers=2, key_pair=True), strict_backend)
    diagram = result.mermaid()
    assert diagram.startswith("flowchart LR")
    for step in result.steps:
        assert step.node.replace("-", "_") + '["' in diagram
        for parent in step.depends_on:
            assert f"{parent.replace('-', '_')} --> {step.node.replace('-', '_')}" in diagram
    markdown = result._repr_markdown_()
    assert "```mermaid" in markdown and "| wave | node |" in markdown
    assert result.to_dict()["schedule"]["sequential"] == 18


def test_the_ec2_and_iam_branch_is_not_behind_the_cluster():
    graph = lab_graph(LabConfig(key_pair=True))
    depends_on = {name: node.depends_on for name, node in graph.items()}
    level = {node: index for index, wave in enumerate(waves(depends_on)) for node in wave}
    for node in (NODE_INSTANCE, NODE_INSTANCE_PROFILE, NODE_IAM_ROLE):
        assert not ancestors(depends_on, node) & DATABASE_NODES, f"{node} must not wait for the database"
    assert level[NODE_INSTANCE] <= level[NODE_CLUSTER]
    assert level[NODE_IAM_ROLE] == 0 and level[NODE_INSTANCE_PROFILE] == 1
    path = critical_path(depends_on)
    assert path[-2:] == [NODE_FIRST_DB, "db-2"]
    assert NODE_INSTANCE not in path
    print(f"\nschedule: {len(path)} waits on the critical path against {len(depends_on)} in a row: {' -> '.join(path)}")


def test_readers_come_after_the_writer_so_the_writer_is_the_first_instance():
    graph = lab_graph(LabConfig(readers=3))
    for index in (1, 2, 3):
        assert graph[f"db-{index + 1}"].depends_on == (NODE_FIRST_DB,)


class Timeline(Progress):
    """Progress that notes when each node finished."""

    def __init__(self) -> None:
        super().__init__("timeline", 0)
        self.finished_at: dict[str, float] = {}
        self.lock = threading.Lock()

    def finished(self, node: str, outcome: str) -> None:
        with self.lock:
            self.finished_at[node] = time.monotonic()


def test_at_run_time_the_instance_is_up_while_the_cluster_is_still_creating(strict_backend):
    strict_backend.strict.slow_cluster_polls = 8  # the cluster says "creating" for 8 polls of 20 ms
    timeline = Timeline()
    apply(LabConfig(), strict_backend, progress=timeline, timing=FAST)
    assert timeline.finished_at[NODE_INSTANCE] < timeline.finished_at[NODE_CLUSTER]
    assert timeline.finished_at[NODE_CLUSTER] < timeline.finished_at[NODE_FIRST_DB]


def test_plan_after_apply_has_nothing_to_do(strict_backend):
    config = LabConfig()
    apply(config, strict_backend)
    after = plan(config, strict_backend)
    assert after.nothing_to_do
    assert {s.action for s in after.steps} == {NOTHING}
    assert all(s.resource_id for s in after.steps)
    assert after.schedule()["sequential"] == 0


def test_plan_spots_a_half_made_resource_and_apply_completes_it(strict_backend):
    config = LabConfig()
    apply(config, strict_backend)
    ec2 = strict_backend.client("ec2")
    db_group = plan(config, strict_backend).step("sg-db").resource_id
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [db_group]}])[
        "SecurityGroupRules"
    ]
    inbound = [r["SecurityGroupRuleId"] for r in rules if not r["IsEgress"]]
    ec2.revoke_security_group_ingress(GroupId=db_group, SecurityGroupRuleIds=inbound)
    before = plan(config, strict_backend)
    assert before.step("sg-db").action == "complete"
    assert "MySQL from the app tier" in before.step("sg-db").detail
    result = apply(config, strict_backend)
    assert result.completed == ["sg-db"] and result.created == []
    assert plan(config, strict_backend).nothing_to_do


def test_with_the_default_vpc_the_network_is_used_not_created(strict_backend):
    config = LabConfig(vpc="default")
    result = plan(config, strict_backend)
    default_vpc = strict_backend.client("ec2").describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])
    assert result.step("vpc").resource_id == default_vpc["Vpcs"][0]["VpcId"]
    assert {s.node for s in result.steps if s.action == USE} == {"vpc", "subnet-public", "subnet-db-a", "subnet-db-b"}
    assert "internet-gateway" not in {s.node for s in result.steps}


def test_an_unknown_existing_vpc_is_a_labkit_error_naming_the_field(strict_backend):
    with pytest.raises(LabkitError) as caught:
        plan(LabConfig(vpc="vpc-0123456789abcdef0"), strict_backend)
    assert caught.value.field == "vpc"


def test_a_backend_in_another_region_is_refused(strict_backend):
    with pytest.raises(ConfigError) as caught:
        plan(LabConfig(region="eu-west-1"), strict_backend)
    assert caught.value.field == "region"
