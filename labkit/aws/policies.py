"""The IAM policies labkit ships (labkit/data/policies/): who holds which, rendered for a region's partition.

The documents are package data, so a `pip install labkit` has them (a checkout's `policies/README.md` explains
them). They are written for the `aws` partition (`arn:aws:`); in China (`aws-cn`) and GovCloud (`aws-us-gov`)
every ARN needs that partition instead (IAM User Guide, "IAM identifiers": ARN format), so `render()` rewrites
every ARN and the managed policies are created from the rendered text; nobody edits a file by hand. Each stays
under AWS's 6,144-character limit for a managed policy even in the longest partition (checked by
tests/unit/test_policies.py), which is why the learner's rights are split in four.

Who writes them: an account administrator, once (`labkit class setup`, labkit.classroom.setup). The instructor
writes no policy: the instructor policy can create learners only with the learner boundary and attach only the
four learner policies (policies/README.md, "What an instructor can and cannot do").
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.abc import Traversable
from typing import Any

from labkit.errors import ConfigError

# What a learner holds: read-only views, then one policy per family of resources they build and tear down.
LEARNER_POLICIES = ("learner-read", "learner-network", "learner-database", "learner-compute")
# What an instructor holds: the same reads, the class commands (status, check, learners), the reset of any lab.
INSTRUCTOR_POLICIES = ("learner-read", "instructor-class", "instructor-reset")
# The permissions boundary every role a learner creates must carry (learner-compute requires it).
BOUNDARY_POLICY = "instance-boundary"
# The permissions boundary every learner user carries (the instructor may create users only with it).
LEARNER_BOUNDARY = "learner-boundary"
# Everything an administrator creates once: what learners hold, both boundaries, what the instructor holds.
SETUP_POLICIES = (*LEARNER_POLICIES, BOUNDARY_POLICY, LEARNER_BOUNDARY, "instructor-class", "instructor-reset")
ALL_POLICY_FILES = SETUP_POLICIES
POLICY_PATH = "/labkit/"  # every managed policy labkit uses lives under this IAM path
MANAGED_POLICY_LIMIT = 6144  # characters without white space (IAM and STS quotas)
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
# The guardrails an instructor sets per learner, as tags of the learner's user (see learners.py): the learner
# policies allow RunInstances only of `ec2:InstanceType` = the tag's value, and CreateDBInstance only of
# `rds:DatabaseClass` = the other's (Service Authorization Reference, Amazon EC2 and Amazon RDS condition keys).
TAG_INSTANCE_TYPE = "labkit:instance-type"
TAG_DB_CLASS = "labkit:db-class"


def policy_dir() -> Traversable:
    """Where the policy documents are: the package's data, wherever labkit is installed."""
    return resources.files("labkit") / "data" / "policies"


def policy_name(stem: str) -> str:
    """The managed policy's name in the account: `labkit-<file stem>`."""
    return f"labkit-{stem}"


def policy_arn(stem: str, partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:policy{POLICY_PATH}{policy_name(stem)}"


def policy_text(stem: str) -> str:
    path = policy_dir() / f"{stem}.json"
    if not path.is_file():
        raise ConfigError(
            f"labkit has no policy {stem!r} ({path})",
            field="policies",
            fix=f"use one of {', '.join(SETUP_POLICIES)}; if one of those is missing, reinstall labkit",
        )
    return path.read_text(encoding="utf-8")


def render(stem: str, partition: str = "aws") -> dict[str, Any]:
    """The policy document of `<stem>.json` with every ARN in `partition`."""
    if partition not in PARTITIONS:
        raise ConfigError(f"unknown AWS partition {partition!r}", field="partition", fix=f"one of {PARTITIONS}")
    return json.loads(policy_text(stem).replace('"arn:aws:', f'"arn:{partition}:'))


def size(document: dict[str, Any]) -> int:
    """The size IAM counts against the managed-policy limit: the document without white space."""
    return len(json.dumps({k: v for k, v in document.items() if not k.startswith("_")}, separators=(",", ":")))


def statements(stem: str) -> list[dict[str, Any]]:
    """The Allow statements of one policy, each as a dict (a lone statement object is a list of one)."""
    found = render(stem)["Statement"]
    return [s for s in ([found] if isinstance(found, dict) else found) if s.get("Effect") == "Allow"]


def granting(action: str, stems: tuple[str, ...] = LEARNER_POLICIES) -> list[str]:
    """The managed policies (`labkit-learner-...`) that allow `action`, so a missing permission names its policy."""
    return [policy_name(stem) for stem in stems if any(action in _as_list(s.get("Action")) for s in statements(stem))]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def granted_actions(stems: tuple[str, ...] = LEARNER_POLICIES) -> set[str]:
    """Every action the policies allow somewhere (for a learner: all four learner policies)."""
    return {action for stem in stems for s in statements(stem) for action in _as_list(s.get("Action"))}
