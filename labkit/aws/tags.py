"""Identity of lab resources: the tags every resource carries and the names derived from them.

Provisioning finds existing resources by these tags before creating; destroy and reset find what to
delete by them, and never touch a resource without them.
"""

from __future__ import annotations

import re

TAG_LAB = "labkit:lab"
TAG_LEARNER = "labkit:learner"
TAG_NODE = "labkit:node"


def resource_name(lab: str, learner: str, node: str) -> str:
    """The Name of a lab resource: lab and learner first, so a console listing groups them."""
    return f"{lab}-{learner}-{node}"


def lab_tags(lab: str, learner: str, node: str) -> list[dict[str, str]]:
    """Tags in the Key/Value shape EC2, RDS and IAM accept."""
    return [
        {"Key": "Name", "Value": resource_name(lab, learner, node)},
        {"Key": TAG_LAB, "Value": lab},
        {"Key": TAG_LEARNER, "Value": learner},
        {"Key": TAG_NODE, "Value": node},
    ]


def ec2_filters(lab: str, learner: str | None = None, node: str | None = None) -> list[dict[str, object]]:
    """EC2 describe filters that select one lab's (and optionally one learner's, one node's) resources."""
    filters: list[dict[str, object]] = [{"Name": f"tag:{TAG_LAB}", "Values": [lab]}]
    if learner is not None:
        filters.append({"Name": f"tag:{TAG_LEARNER}", "Values": [learner]})
    if node is not None:
        filters.append({"Name": f"tag:{TAG_NODE}", "Values": [node]})
    return filters


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """Key/Value tag list as a plain dict."""
    return {t["Key"]: t["Value"] for t in tags or []}


def is_lab_resource(tags: list[dict[str, str]] | None, lab: str, learner: str | None = None) -> bool:
    """True only for a resource tagged with this lab (and learner, when given)."""
    found = tag_dict(tags)
    if found.get(TAG_LAB) != lab:
        return False
    return learner is None or found.get(TAG_LEARNER) == learner


# Graph node names: the value of the labkit:node tag, and the suffix of each resource's name.
NODE_VPC = "vpc"
NODE_INTERNET_GATEWAY = "internet-gateway"
NODE_PUBLIC_SUBNET = "subnet-public"
NODE_DB_SUBNETS = ("subnet-db-a", "subnet-db-b")
NODE_ROUTE_TABLE = "route-table-public"
NODE_SG_APP = "sg-app"
NODE_SG_DB = "sg-db"
NODE_DB_SUBNET_GROUP = "db-subnet-group"
NODE_CLUSTER = "cluster"
NODE_FIRST_DB = "db-1"  # the first DB instance: Aurora makes it the writer, until a failover
NODE_IAM_ROLE = "iam-role"
NODE_INSTANCE_PROFILE = "instance-profile"
NODE_KEY_PAIR = "key-pair"
NODE_INSTANCE = "instance"

# States in which an EC2 instance still counts as the lab's instance: one shutting down or terminated is gone
# for good (a new one replaces it), so lookups and security views skip it.
LAB_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")


def live_instance_filter() -> dict[str, object]:
    """The describe_instances filter that leaves out instances shutting down or terminated."""
    return {"Name": "instance-state-name", "Values": list(LAB_INSTANCE_STATES)}


def cluster_roles(cluster: dict) -> tuple[str | None, tuple[str, ...]]:
    """(writer, sorted readers) of a described DB cluster, from its members' IsClusterWriter flags."""
    members = cluster.get("DBClusterMembers", [])
    writer = next((m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")), None)
    return writer, tuple(sorted(m["DBInstanceIdentifier"] for m in members if not m.get("IsClusterWriter")))


def db_instance_node(number: int) -> str:
    """Node name of the number-th DB instance (1-based). Role-neutral, as the console names instances: a failover
    makes another instance the writer, and a name that said `writer` would then lie."""
    return f"db-{number}"


# Node names of DB instances before they were role-neutral; a lab made then is still found, and deleted, by them.
_LEGACY_DB_NODE = re.compile(r"db-(writer|reader-(\d+))")


def current_node(node: str) -> str:
    """The node a `labkit:node` tag names today: `db-writer` was `db-1`, `db-reader-N` is `db-(N+1)`."""
    legacy = _LEGACY_DB_NODE.fullmatch(node)
    if legacy is None:
        return node
    return db_instance_node(1 if legacy.group(1) == "writer" else int(legacy.group(2)) + 1)
