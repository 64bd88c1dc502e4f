"""The resource registry: every type declared once, and stages, deletion order, listing, class scan, strict
layer and cost rows derived from it, so a new type is one class plus its node in the lab graph."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from typing import Any

import pytest
from support.strict import TAGGED_CREATES

from labkit.aws.tags import NODE_DB_SUBNETS, NODE_SG_APP, NODE_VPC, lab_tags
from labkit.classroom.scan import scan
from labkit.config import LabConfig
from labkit.errors import LabkitError
from labkit.lab import graph
from labkit.lab.apply import apply
from labkit.lab.cost import default_table, plan_cost
from labkit.lab.destroy import destroy_graph
from labkit.lab.graph import STAGES, deletion_order, lab_graph, stage_closure, stage_of, widest_graph
from labkit.lab.inventory import inventory, listed_types
from labkit.lab.resources import LabContext, Resource, registry
from labkit.lab.resources.compute import Instance, KeyPair, Volume
from labkit.lab.resources.database import Cluster, ClusterSecret, ClusterSnapshots, DbInstance, DbSubnetGroup
from labkit.lab.resources.iam import InstanceProfile, Role
from labkit.lab.resources.network import (
    InternetGateway,
    LeftoverInterfaces,
    NetworkInterface,
    RouteTable,
    SecurityGroup,
    Subnet,
    Vpc,
)
from labkit.lab.resources.parameters import ClusterParameterGroup
from labkit.lab.resources.registry import Describe, PriceRow, TaggedCreate

CONFIGS = [
    LabConfig(),
    LabConfig(readers=3, key_pair=True),
    LabConfig(vpc="default", readers=0),
    LabConfig(vpc="vpc-0123456789abcdef0", key_pair=True),
]
FULL_LAB = LabConfig(readers=1, key_pair=True, ssh_cidr="203.0.113.7")

# The hand-written list destroy and status used before the registry (DELETABLE_TYPES): the derived order
# must keep it, since status tables (and the notebooks that show them) list types in this order.
OLD_DELETION_ORDER = [
    *(Instance, KeyPair, DbInstance, Cluster, ClusterSnapshots, DbSubnetGroup, ClusterParameterGroup),
    *(InstanceProfile, Role),
    *(LeftoverInterfaces, SecurityGroup, RouteTable, Subnet, InternetGateway, Vpc),
]
OLD_COMPANION_TYPES = [Volume, NetworkInterface, ClusterSecret]


def old_stage_of(node: str) -> str:
    """The hand-written rule stage_of replaced."""
    if node in ("db-subnet-group", "cluster", "db-1", "cluster-parameters") or node.startswith("db-"):
        return "database"
    if node in ("iam-role", "instance-profile", "key-pair", "instance"):
        return "compute"
    return "network"


def edges_between_types(nodes: dict[str, Resource]) -> set[tuple[type, type]]:
    """(dependent type, dependency type) for every edge of a graph between nodes of two deletable types."""
    return {
        (registry.get(r.type_name), registry.get(nodes[need].type_name))
        for r in nodes.values()
        for need in r.depends_on
        if need in nodes and r.type_name != nodes[need].type_name and r.deletable and nodes[need].deletable
    }


# ----- declarations -----


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"vpc={c.vpc},readers={c.readers},key={c.key_pair}")
def test_every_class_in_the_lab_graph_is_registered_and_has_a_stage(config):
    for node, resource in lab_graph(config).items():
        registered = registry.get(resource.type_name)
        assert isinstance(resource, registered), f"{node}: {type(resource).__name__} is not {registered.__name__}"
        assert stage_of(resource) == old_stage_of(node), node


def test_every_declared_name_and_setting_exists():
    for cls in registry.resource_types():
        for name in (*cls.deleted_after, *cls.holds, *cls.companions):
            assert registry.get(name), f"{cls.__name__} names {name!r}"
        assert cls.stage in (*STAGES, None), cls.__name__
        for row in cls.prices:
            service = row.service_for(LabConfig())  # the lab engine's price key for the database rows
            assert service in default_table().services, f"{cls.__name__}: {service!r} is not in the price table"
            assert not row.size_setting or row.size_setting in {f.name for f in dataclasses.fields(LabConfig)}
        if cls.tagged_create is not None:
            assert cls.tagged_create.tags in ("TagSpecifications", "Tags"), cls.__name__
            assert cls.stage is not None, f"{cls.__name__} is created, so a stage creates it"


def test_a_name_is_registered_once():
    with pytest.raises(LabkitError, match="registered twice"):
        registry.register("vpc")(Subnet)
    assert registry.get("vpc") is Vpc and Subnet.type_name == "subnet"


# ----- deletion order and what status lists -----


def test_the_derived_deletion_order_is_the_old_hand_order():
    assert deletion_order() == OLD_DELETION_ORDER
    assert listed_types() == [*OLD_DELETION_ORDER, *OLD_COMPANION_TYPES]


def test_every_type_is_deleted_after_what_must_go_first_and_before_what_it_depends_on():
    order = deletion_order()
    position = {cls: index for index, cls in enumerate(order)}
    assert set(order) == {cls for cls in registry.resource_types() if cls.deletable}
    for cls in order:
        for first in cls.deleted_after:
            assert position[registry.get(first)] < position[cls], f"{first} must go before {cls.type_name}"
    for config in CONFIGS[:2]:
        for dependent, dependency in edges_between_types(destroy_graph(config, [])):
            assert position[dependent] < position[dependency], f"{dependent.__name__} before {dependency.__name__}"


def test_destroy_wires_the_nodes_only_destroy_handles_as_declared():
    nodes = destroy_graph(LabConfig(readers=1), [])
    assert nodes["network-interfaces"].depends_on == (*("subnet-public", *NODE_DB_SUBNETS), NODE_SG_APP, "sg-db")
    assert "network-interfaces" in nodes["instance"].depends_on, "detached interfaces go after the instance"
    assert nodes["cluster-snapshots"].depends_on == ()
    assert "cluster-snapshots" in nodes["cluster"].depends_on, "snapshots go after their cluster"


@pytest.fixture
def register() -> Iterator[Any]:
    """Register hypothetical types for one test, and take them out again."""
    added: list[str] = []

    def add(name: str, cls: type) -> type:
        added.append(name)
        return registry.register(name)(cls)

    yield add
    for name in added:
        registry.unregister(name)


def test_a_cycle_in_the_deletion_rules_is_refused(register):
    class Chicken(Resource):
        kind = "Chicken"
        deleted_after = ("egg",)

    class Egg(Resource):
        kind = "Egg"
        deleted_after = ("chicken",)

    register("chicken", Chicken)
    register("egg", Egg)
    with pytest.raises(LabkitError, match="cycle among chicken, egg"):
        deletion_order()


# ----- the strict layer and the class scan -----


def test_the_strict_layer_guards_the_create_call_of_every_type_labkit_creates():
    assert registry.tagged_creates() == TAGGED_CREATES
    created = [cls for cls in registry.resource_types() if cls.stage and not cls.adopted]
    assert len(TAGGED_CREATES) == len(created) > 0


def test_every_create_call_an_apply_makes_carries_tags_the_strict_layer_checks(strict_backend):
    calls: set[tuple[str, str]] = set()

    def record(event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".")
        calls.add((service, operation))

    strict_backend.session().events.register("before-parameter-build", record)
    apply(FULL_LAB, strict_backend, stream=io.StringIO())
    creates = set()
    for service, operation in calls:
        model = strict_backend.client(service).meta.service_model.operation_model(operation)
        members = model.input_shape.members if model.input_shape else {}
        if operation.startswith(("Create", "Run")) and {"Tags", "TagSpecifications"} & members.keys():
            creates.add((service, operation))
    assert creates == set(TAGGED_CREATES), "a create call the strict layer does not check, or one apply never makes"


def test_the_class_scan_sees_everything_status_lists_that_carries_the_lab_tags(strict_backend):
    apply(FULL_LAB, strict_backend, stream=io.StringIO())
    scanned = registry.scanned_types()
    assert {cls for cls in listed_types() if cls.lab_tagged} <= set(scanned)
    assert ClusterSecret not in scanned, "RDS tags the secret with its cluster, not with the lab"
    listed = inventory(LabContext(FULL_LAB, strict_backend))
    (region,) = scan([strict_backend])
    seen = {s.resource_id: s for s in region.of(FULL_LAB.lab, FULL_LAB.learner)}
    for found in listed:
        if found.kind != ClusterSecret.kind:
            assert found.resource_id in seen, f"the class view misses {found.kind} {found.resource_id}"
            assert seen[found.resource_id].kind == found.kind
    assert "Route table" in {s.kind for s in seen.values()}, "the hand-written scan missed route tables"


# ----- cost -----


def test_the_plan_cost_has_a_row_for_every_priced_type_in_creation_order():
    estimate = plan_cost(LabConfig(readers=2))
    items = [line.item for line in estimate.lines]
    priced = [cls for cls in registry.resource_types() if cls.prices]
    assert {row.item for cls in priced for row in cls.prices} == set(items)
    assert items == [
        "Aurora writer",
        "Aurora readers",
        "EC2 instance",
        "public IPv4 address",
        "EBS gp3 root volume",
        "Secrets Manager secret (master password)",
    ]
    assert [line.count for line in estimate.lines] == [1, 2, 1, 1, 1, 1]


# ----- a new type: one class and one node -----


class VpcEndpoint(Resource):
    """A hypothetical new type: an interface endpoint for SSM inside the lab's VPC."""

    kind = "VPC endpoint"
    describe = Describe("ec2", "describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId")
    stage = "network"
    tagged_create = TaggedCreate("CreateVpcEndpoint", "TagSpecifications")
    deleted_after = ("instance",)  # the instance's SSM agent talks through it
    prices = (PriceRow("VPC endpoint", "public-ipv4", size="address"),)

    def create(self, ctx: LabContext) -> str:
        raise NotImplementedError

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        raise NotImplementedError


@pytest.fixture
def with_endpoint(register, monkeypatch) -> None:
    """The new class registered, and its node added to the lab graph (the one edge a new type needs)."""
    register("vpc-endpoint", VpcEndpoint)
    original = graph.lab_graph

    def lab_graph_with_endpoint(config: LabConfig, **options: Any) -> dict[str, Resource]:
        nodes = original(config, **options)
        nodes["vpc-endpoint"] = VpcEndpoint("vpc-endpoint", [NODE_VPC, *NODE_DB_SUBNETS, NODE_SG_APP])
        return nodes

    monkeypatch.setattr(graph, "lab_graph", lab_graph_with_endpoint)


def test_a_new_type_gets_its_stage_place_in_the_deletion_order_and_strict_check(with_endpoint):
    nodes = graph.lab_graph(LabConfig())
    assert stage_of(nodes["vpc-endpoint"]) == "network"
    assert "vpc-endpoint" in stage_closure(nodes, "network")
    order = deletion_order()
    assert "vpc-endpoint" in widest_graph()
    assert order.index(Instance) < order.index(VpcEndpoint), "declared: after the instance"
    for dependency in (Vpc, Subnet, SecurityGroup):
        assert order.index(VpcEndpoint) < order.index(dependency), f"from its node: before {dependency.__name__}"
    assert VpcEndpoint in listed_types()
    assert registry.tagged_creates()[("ec2", "CreateVpcEndpoint")] == "TagSpecifications"


def test_a_new_type_is_found_by_inventory_and_the_class_scan(with_endpoint, strict_backend):
    ec2, config = strict_backend.client("ec2"), LabConfig(learner="ana")

    def spec(kind: str, node: str) -> list[dict[str, Any]]:
        return [{"ResourceType": kind, "Tags": lab_tags(config.lab, config.learner, node)}]

    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16", TagSpecifications=spec("vpc", NODE_VPC))["Vpc"]["VpcId"]
    endpoint = ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName="com.amazonaws.us-east-1.ssm",
        VpcEndpointType="Interface",
        TagSpecifications=spec("vpc-endpoint", "vpc-endpoint"),
    )["VpcEndpoint"]["VpcEndpointId"]
    found = {f.resource_id: f for f in inventory(LabContext(config, strict_backend))}
    assert (found[endpoint].kind, found[endpoint].node, found[endpoint].state) == (
        "VPC endpoint",
        "vpc-endpoint",
        "available",
    )
    (region,) = scan([strict_backend])
    assert {s.resource_id: s.kind for s in region.of(config.lab, config.learner)}[endpoint] == "VPC endpoint"
