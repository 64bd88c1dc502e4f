"""Region facts from botocore's bundled data: which regions have EC2 and RDS, and each region's partition.

No network call, and botocore loads only when a fact is first asked for, so `labkit --help` (which builds its
parser from LabConfig) stays fast. The config and the backends both check regions here; this module imports
neither of them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from labkit.checks import require_str, suggest
from labkit.errors import ConfigError

REGION_FIX = "use a region code such as us-east-1, eu-west-1 or ap-southeast-2"


@lru_cache(maxsize=1)
def botocore_data() -> Any:
    """One botocore session for reading its bundled data (regions, partitions, service models)."""
    import botocore.session  # start-up time: `labkit --help` builds the parser from LabConfig without botocore

    return botocore.session.get_session()


@lru_cache(maxsize=64)
def partition_of(region: str) -> str:
    """The AWS partition of a region (aws, aws-cn, aws-us-gov, ...)."""
    return botocore_data().get_partition_for_region(region)


@lru_cache(maxsize=1)
def known_regions() -> frozenset[str]:
    """Regions where both EC2 and RDS exist, from botocore's bundled partition data (no network call)."""
    session = botocore_data()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        ec2 = set(session.get_available_regions("ec2", partition_name=partition))
        rds = set(session.get_available_regions("rds", partition_name=partition))
        regions |= ec2 & rds
    return frozenset(regions)


def check_region(value: Any, *, field: str = "region", fix: str = REGION_FIX) -> str:
    """The region code, stripped; anything but a real AWS region with EC2 and RDS raises a ConfigError naming
    `field` (the config field, or the environment variable or file the value came from)."""
    text = require_str(field, value, "us-east-1")
    if text not in known_regions():
        raise ConfigError(
            f"{text!r} is not an AWS region with EC2 and RDS{suggest(text, known_regions())}", field=field, fix=fix
        )
    return text
