"""The IAM policies in policies/: which a learner and an instructor hold, rendered for a region's partition.

The JSON files are written for the `aws` partition (`arn:aws:`). In China (`aws-cn`) and GovCloud
(`aws-us-gov`) every ARN needs that partition instead (IAM User Guide, "IAM identifiers": ARN format), so
`render()` rewrites every ARN, and the managed policies are created from the rendered text; nobody edits a
file by hand. Each file stays under AWS's 6,144-character limit for a managed policy even in the longest
partition (checked by tests/unit/test_policies.py), which is why the learner's rights are split in four.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
# What a learner holds: read-only views, then one policy per family of resources they build and tear down.
LEARNER_POLICIES = ("learner-read", "learner-network", "learner-database", "learner-compute")
# What an instructor holds: the same reads, the class commands (status, check, learners), the reset of any lab.
INSTRUCTOR_POLICIES = ("learner-read", "instructor-class", "instructor-reset")
# The permissions boundary every role a learner creates must carry (learner-compute requires it).
BOUNDARY_POLICY = "instance-boundary"
ALL_POLICY_FILES = (*LEARNER_POLICIES, BOUNDARY_POLICY, "instructor-class", "instructor-reset")
POLICY_PATH = "/labkit/"  # every managed policy labkit creates lives under this IAM path
MANAGED_POLICY_LIMIT = 6144  # characters without white space (IAM and STS quotas)
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
_ARN = re.compile(r'"arn:aws:')


def policy_name(stem: str) -> str:
    """The managed policy's name in the account: `labkit-<file stem>`."""
    return f"labkit-{stem}"


def policy_arn(stem: str, partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:policy{POLICY_PATH}{policy_name(stem)}"


def policy_text(stem: str) -> str:
    path = POLICY_DIR / f"{stem}.json"
    if not path.is_file():
        raise ConfigError(
            f"no policy file {path}", field="policies", fix="run labkit from its repository, where policies/ lives"
        )
    return path.read_text()


def render(stem: str, partition: str = "aws") -> dict[str, Any]:
    """The policy document of `policies/<stem>.json` with every ARN in `partition`."""
    if partition not in PARTITIONS:
        raise ConfigError(f"unknown AWS partition {partition!r}", field="partition", fix=f"one of {PARTITIONS}")
    return json.loads(_ARN.sub(f'"arn:{partition}:', policy_text(stem)))


def size(document: dict[str, Any]) -> int:
    """The size IAM counts against the managed-policy limit: the document without white space."""
    return len(json.dumps({k: v for k, v in document.items() if not k.startswith("_")}, separators=(",", ":")))


def granting(action: str, stems: tuple[str, ...] = LEARNER_POLICIES) -> list[str]:
    """The policy files that allow `action` (so a missing permission can name the file that grants it)."""
    found = []
    for stem in stems:
        statements = render(stem)["Statement"]
        if any(action in _as_list(s.get("Action")) for s in statements if s.get("Effect") == "Allow"):
            found.append(f"policies/{stem}.json")
    return found


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
