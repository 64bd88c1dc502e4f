"""The one list of lab resource types, and what is derived from it (cloud-custodian's `@resources.register`).

Each type is a class that declares how it is listed (`Describe`), which stage creates it, the call that tags it
on creation, what must be deleted before it, what goes with it and how it is priced. Stages, the deletion
order, what status lists, the class scan, the strict test layer and the plan's cost rows all read these
declarations, so a new resource type is one class here plus its node in the lab graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from labkit.engines import engine_of
from labkit.errors import LabkitError

if TYPE_CHECKING:
    from labkit.config import LabConfig
    from labkit.lab.resources.base import ResourceType

T = TypeVar("T", bound="type[ResourceType]")

# The family modules in the order the lab builds them; types no rule orders keep this order (then the order
# each module defines them in), so the deletion order, and the status listing that follows it, are stable.
FAMILIES = ("network", "iam", "parameters", "database", "compute")
GLOBAL_SERVICES = frozenset({"iam"})  # listed once per account, not per region
LAB_ENGINE = "lab-engine"  # a PriceRow service: the price key of the lab's engine (labkit.engines)

_types: dict[str, type[ResourceType]] = {}


# ----- what a class declares -----


@dataclass(frozen=True)
class Describe:
    """How every resource of a type is listed: one describe (or list) call and the keys of its items."""

    service: str  # the boto3 client
    operation: str  # the describe or list call, as boto3 names it
    items: str  # the reply's list of items
    id: str  # the item key labkit uses as the id
    tags: str = "Tags"  # the item key of the tags ("" when the listing omits them: the class reads them itself)
    state: str = "State"  # the item key of the state ("" when the type has none: it just exists)
    detail: str = ""  # a dotted item key shown beside the state (an endpoint, an ARN)
    created: str = ""  # the item key of the creation time (ages in the class view)
    size: str = ""  # the item key of the size (instance type or class)
    name: str = ""  # the item key of the name, when it is not the Name tag
    public_ip: str = ""  # the item key whose presence means a public IPv4 address
    filters: tuple[dict[str, Any], ...] = ()  # EC2 filters every listing applies (live instances only)

    @property
    def is_global(self) -> bool:
        return self.service in GLOBAL_SERVICES


@dataclass(frozen=True)
class TaggedCreate:
    """The call that creates a type, and the parameter that must carry the lab tags (botocore's names)."""

    operation: str  # e.g. "CreateVpc", as botocore events name it
    tags: str  # "TagSpecifications" (EC2) or "Tags" (RDS, IAM)


@dataclass(frozen=True)
class PriceRow:
    """One row of a plan's cost: its name, the price table service that prices it, and the size it is priced at."""

    item: str
    service: str
    size: str = ""  # a fixed size ("address", "8")
    size_setting: str = ""  # or the LabConfig setting that holds the size ("instance_type")
    label: str = ""  # the size as the table shows it, when not the size itself
    per: str = "each"  # how many for n nodes of the type: "each" (n), "first" (the writer: 1), "others" (n - 1)

    def size_for(self, config: LabConfig) -> str:
        return str(getattr(config, self.size_setting)) if self.size_setting else self.size

    def service_for(self, config: LabConfig) -> str:
        """The table's service: `service`, or for LAB_ENGINE the price key of the lab's engine."""
        return engine_of(config).price_key if self.service == LAB_ENGINE else self.service

    def count(self, nodes: int) -> int:
        return {"each": nodes, "first": min(nodes, 1), "others": max(nodes - 1, 0)}[self.per]


# ----- registering -----


def register(name: str) -> Callable[[T], T]:
    """Class decorator: add a resource type to the registry under `name` (the name other declarations use)."""

    def add(cls: T) -> T:
        if name in _types and _types[name] is not cls:
            raise LabkitError(f"resource type {name!r} is registered twice", field=name)
        cls.type_name = name
        _types[name] = cls
        return cls

    return add


def unregister(name: str) -> None:
    """Take a type out of the registry again (tests register hypothetical types)."""
    _types.pop(name, None)


def get(name: str) -> type[ResourceType]:
    """The type registered as `name`; an unknown name is a declaration error."""
    try:
        return _types[name]
    except KeyError:
        raise LabkitError(f"no resource type is registered as {name!r}", field=name) from None


def resource_types() -> list[type[ResourceType]]:
    """Every registered type, in family order, then in the order each family module defines them."""
    sequence = {cls: index for index, cls in enumerate(_types.values())}
    return sorted(_types.values(), key=lambda cls: (_family_rank(cls), sequence[cls]))


def _family_rank(cls: type) -> int:
    family = cls.__module__.rsplit(".", 1)[-1]
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


# ----- derived -----


def ordered_for_deletion(before: Iterable[tuple[str, str]] = ()) -> list[type[ResourceType]]:
    """Every deletable type, each after the types that must be deleted before it (a topological sort).

    What must go first is each class's `deleted_after`, plus `before`: (first, then) pairs of type names, such
    as those a dependency graph implies. The order is built from the back: the last to go is the first type, in
    family order, that nothing must follow; so ties keep the order in which families are built, reversed.
    """
    deletable = [cls for cls in resource_types() if cls.deletable]
    names = {cls.type_name for cls in deletable}
    follows: dict[str, set[str]] = {name: set() for name in names}  # type -> the types deleted after it
    for cls in deletable:
        for first in cls.deleted_after:
            get(first)  # a misspelt name fails here, not silently
            if first in names:
                follows[first].add(cls.type_name)
    for first, then in before:
        if first in names and then in names and first != then:
            follows[first].add(then)
    reversed_order: list[type[ResourceType]] = []
    remaining = list(deletable)
    while remaining:
        left = {cls.type_name for cls in remaining}
        last = next((cls for cls in remaining if not follows[cls.type_name] & left), None)
        if last is None:
            raise LabkitError(f"the deletion rules form a cycle among {', '.join(sorted(left))}")
        reversed_order.append(last)
        remaining.remove(last)
    return reversed_order[::-1]


def companions_of(owners: Iterable[type[ResourceType]]) -> dict[type[ResourceType], type[ResourceType]]:
    """The companion types of `owners` (what goes with them and is listed to prove it went), each to its owner."""
    return {get(name): owner for owner in owners for name in owner.companions}


def cleanup_types() -> list[type[ResourceType]]:
    """Types apply never creates but destroy removes (snapshots, detached interfaces): one node each."""
    return [cls for cls in resource_types() if cls.deletable and cls.cleanup_node]


def scanned_types() -> list[type[ResourceType]]:
    """Types that carry the lab tags, so the class view can find every learner's resources by them."""
    return [cls for cls in resource_types() if cls.lab_tagged and cls.describe is not None]


def tagged_creates() -> dict[tuple[str, str], str]:
    """(service, create call) -> the parameter that carries the lab tags, for every type labkit creates."""
    return {
        (cls.describe.service, cls.tagged_create.operation): cls.tagged_create.tags
        for cls in resource_types()
        if cls.tagged_create is not None and cls.describe is not None
    }
