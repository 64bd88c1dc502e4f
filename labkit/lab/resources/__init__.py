"""Lab resources: one registered class per AWS resource type, in five families (network, iam, parameters, database, compute).

Importing this package imports every family, so the registry (registry.py) always holds every type; the shared
shape (LabContext, Found, ResourceType, Resource) lives in base.py and is re-exported here.
"""

from labkit.lab.resources import compute, database, iam, network, parameters
from labkit.lab.resources.base import (
    Adopted,
    Found,
    LabContext,
    Resource,
    ResourceType,
    current_step,
    paginate,
    step_scope,
)

__all__ = [
    "Adopted",
    "Found",
    "LabContext",
    "Resource",
    "ResourceType",
    "compute",
    "current_step",
    "database",
    "iam",
    "network",
    "paginate",
    "parameters",
    "step_scope",
]
