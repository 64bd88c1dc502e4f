"""The lab as a dependency graph: its nodes, the stage that builds each, and the arithmetic on it.

A node depends on what must exist before it is created, so it is deleted before those. The waves are the
earliest moment each node can start: every node in a wave depends only on nodes of earlier waves, so apply
can run a wave's nodes at the same time. The deletion order of resource types reads the same edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from labkit.aws.tags import (
    NODE_CLUSTER,
    NODE_DB_SUBNET_GROUP,
    NODE_DB_SUBNETS,
    NODE_FIRST_DB,
    NODE_IAM_ROLE,
    NODE_INSTANCE,
    NODE_INSTANCE_PROFILE,
    NODE_INTERNET_GATEWAY,
    NODE_KEY_PAIR,
    NODE_PUBLIC_SUBNET,
    NODE_ROUTE_TABLE,
    NODE_SG_APP,
    NODE_SG_DB,
    NODE_VPC,
    db_instance_node,
)
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError
from labkit.lab.resources import Resource, ResourceType, registry
from labkit.lab.resources.compute import Instance, KeyPair
from labkit.lab.resources.database import NODE_CLUSTER_PARAMETERS, Cluster, DbInstance, DbSubnetGroup
from labkit.lab.resources.iam import InstanceProfile, Role
from labkit.lab.resources.network import (
    AppSecurityGroup,
    DbSecurityGroup,
    ExistingSubnet,
    ExistingVpc,
    InternetGateway,
    RouteTable,
    Subnet,
    Vpc,
)
from labkit.lab.resources.parameters import ClusterParameterGroup

# The lab is built in three stages, one notebook each; a stage brings along whatever it depends on.
STAGES = ("network", "database", "compute")


def network_nodes(config: LabConfig) -> list[Resource]:
    """A new VPC with its gateway, route table and subnets; or an existing VPC's subnets, used as they are."""
    if config.vpc != "create":
        subnets = [NODE_PUBLIC_SUBNET, *NODE_DB_SUBNETS]
        return [ExistingVpc(NODE_VPC), *(ExistingSubnet(node, [NODE_VPC]) for node in subnets)]
    public_cidr, db_a_cidr, db_b_cidr = config.subnet_cidrs()
    return [
        Vpc(NODE_VPC),
        InternetGateway(NODE_INTERNET_GATEWAY, [NODE_VPC]),
        Subnet(NODE_PUBLIC_SUBNET, (NODE_VPC,), cidr=public_cidr, zone_index=0, public=True),
        Subnet(NODE_DB_SUBNETS[0], (NODE_VPC,), cidr=db_a_cidr, zone_index=0, public=False),
        Subnet(NODE_DB_SUBNETS[1], (NODE_VPC,), cidr=db_b_cidr, zone_index=1, public=False),
        RouteTable(NODE_ROUTE_TABLE, [NODE_INTERNET_GATEWAY, NODE_PUBLIC_SUBNET]),
    ]


def lab_graph(config: LabConfig, *, readers: int | None = None, key_pair: bool | None = None) -> dict[str, Resource]:
    """Every node of the lab, keyed by node name, in a valid creation order."""
    readers = config.readers if readers is None else readers
    key_pair = config.key_pair if key_pair is None else key_pair
    nodes = network_nodes(config)
    nodes += [
        AppSecurityGroup(NODE_SG_APP, [NODE_VPC]),
        DbSecurityGroup(NODE_SG_DB, [NODE_VPC, NODE_SG_APP]),
        DbSubnetGroup(NODE_DB_SUBNET_GROUP, NODE_DB_SUBNETS),
        ClusterParameterGroup(NODE_CLUSTER_PARAMETERS),  # requires TLS
        Cluster(NODE_CLUSTER, [NODE_DB_SUBNET_GROUP, NODE_SG_DB, NODE_CLUSTER_PARAMETERS]),
        DbInstance(NODE_FIRST_DB, (NODE_CLUSTER,), promotion_tier=0),
        # Readers join after the first: Aurora makes the first instance to come up the writer.
        *(DbInstance(db_instance_node(n), (NODE_FIRST_DB,), promotion_tier=1) for n in range(2, readers + 2)),
        Role(NODE_IAM_ROLE),
        InstanceProfile(NODE_INSTANCE_PROFILE, [NODE_IAM_ROLE]),
    ]
    instance_needs = [NODE_PUBLIC_SUBNET, NODE_SG_APP, NODE_INSTANCE_PROFILE]
    if config.vpc == "create":
        instance_needs.insert(1, NODE_ROUTE_TABLE)  # the SSM agent needs its route out when it boots
    if key_pair:
        nodes.append(KeyPair(NODE_KEY_PAIR))
        instance_needs.append(NODE_KEY_PAIR)
    nodes.append(Instance(NODE_INSTANCE, instance_needs))
    return {node.node: node for node in nodes}


def with_cleanup_nodes(graph: dict[str, Resource]) -> dict[str, Resource]:
    """`graph` plus one node per type only destroy handles (snapshots, detached interfaces), wired as declared.

    Such a node depends on the nodes of the types it `holds` (they wait for it to go), and the nodes of the
    types it is `deleted_after` depend on it (it waits for them).
    """
    created = list(graph.items())
    for cleanup in registry.cleanup_types():
        holds = [node for node, resource in created if resource.type_name in cleanup.holds]
        graph[cleanup.cleanup_node] = cleanup(cleanup.cleanup_node, holds)
        for _, resource in created:
            if resource.type_name in cleanup.deleted_after:
                resource.depends_on += (cleanup.cleanup_node,)
    return graph


def widest_graph() -> dict[str, Resource]:
    """Every node any lab can have: its own VPC, a reader, a key pair, and the nodes only destroy handles."""
    return with_cleanup_nodes(lab_graph(LabConfig(vpc="create", readers=1, key_pair=True)))


def deletion_order() -> list[type[ResourceType]]:
    """Every type destroy deletes, dependents first: the widest graph's edges plus what each class declares."""
    graph = widest_graph()
    edges = {
        (resource.type_name, graph[need].type_name)  # a node goes before what it depends on
        for resource in graph.values()
        for need in resource.depends_on
        if need in graph
    }
    return registry.ordered_for_deletion(edges)


def stage_of(resource: Resource) -> str:
    """Which stage (notebook) creates this node: its type's declaration."""
    if resource.stage not in STAGES:
        raise LabkitError(f"{resource.node} ({type(resource).__name__}) is created by no stage", field=resource.node)
    return resource.stage


def stage_closure(graph: Mapping[str, Resource], stage: str) -> set[str]:
    """The nodes of `stage` and everything they depend on."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}", field="only", fix=f"use one of {', '.join(STAGES)}")
    keep: set[str] = set()
    stack = [node for node, resource in graph.items() if stage_of(resource) == stage]
    while stack:
        node = stack.pop()
        if node not in keep:
            keep.add(node)
            stack.extend(p for p in graph[node].depends_on if p in graph)
    return keep


# ----- graph arithmetic -----


def waves(depends_on: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Topological levels: wave k holds the nodes whose longest chain of dependencies has length k."""
    level: dict[str, int] = {}

    def depth(node: str, trail: tuple[str, ...] = ()) -> int:
        if node in trail:
            raise LabkitError(f"dependency cycle: {' -> '.join((*trail, node))}")
        if node not in level:
            parents = [p for p in depends_on[node] if p in depends_on]
            level[node] = 1 + max((depth(p, (*trail, node)) for p in parents), default=-1)
        return level[node]

    for node in depends_on:
        depth(node)
    grouped: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in depends_on:
        grouped[level[node]].append(node)
    return grouped


def critical_path(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """The longest chain of dependencies: the waits that cannot overlap, however many run at once."""
    best: dict[str, list[str]] = {}
    for wave in waves(depends_on):
        for node in wave:
            parents = [best[p] for p in depends_on[node] if p in best]
            best[node] = [*max(parents, key=len, default=[]), node]
    return max(best.values(), key=len, default=[])


def reversed_graph(depends_on: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Dependents instead of dependencies: the order in which things can be deleted."""
    dependents: dict[str, list[str]] = {node: [] for node in depends_on}
    for node, parents in depends_on.items():
        for parent in parents:
            if parent in dependents:
                dependents[parent].append(node)
    return dependents
