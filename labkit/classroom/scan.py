"""A class-wide look at one region: every lab resource by its tags, and what merely looks like one.

The Resource Groups Tagging API misses DB subnet groups, key pairs and network interfaces (FACTS.md), so
this reads every registered type that carries the lab tags with its own describe call, as the per-learner
inventory does (labkit.lab.resources.registry). It also keeps what is *not* a lab resource but looks
related (an untagged VPC named like a lab, half-tagged resources), so reset can say what it leaves alone
and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labkit.aws.backend import Backend, get_backend
from labkit.aws.tags import TAG_LAB, TAG_LEARNER, tag_dict
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.resources import ResourceType
from labkit.lab.resources.registry import scanned_types

GLOBAL = "global"  # the region column of IAM resources
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]|min|mins|hours?|days?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hour": 3600, "hours": 3600}
_UNIT_SECONDS |= {"d": 86400, "day": 86400, "days": 86400}


@dataclass(frozen=True)
class Seen:
    """One resource as the scan saw it: its lab tags (if any), state, creation time and size."""

    region: str
    kind: str
    resource_id: str
    name: str = ""
    lab: str | None = None
    learner: str | None = None
    state: str = ""
    created: datetime | None = None
    size: str = ""  # instance type or DB instance class
    public_ip: bool = False
    engine: str = ""  # a database's RDS engine (what prices its instance class)

    @property
    def tagged(self) -> bool:
        """Carries both lab tags: a lab resource that reset may delete (if its lab and learner are chosen)."""
        return bool(self.lab and self.learner)


@dataclass
class RegionScan:
    """What one region holds: lab resources and look-alikes, plus the backend that read them."""

    backend: Backend
    seen: list[Seen] = field(default_factory=list)

    @property
    def region(self) -> str:
        return self.backend.region

    def pairs(self) -> set[tuple[str, str]]:
        """Every (lab, learner) that has at least one tagged resource here."""
        return {(s.lab, s.learner) for s in self.seen if s.lab and s.learner}

    def of(self, lab: str, learner: str) -> list[Seen]:
        return [s for s in self.seen if s.lab == lab and s.learner == learner]

    def created(self, lab: str, learner: str) -> datetime | None:
        """When the learner's lab began: the oldest creation time among its resources (None if none has one)."""
        times = [s.created for s in self.of(lab, learner) if s.created is not None]
        return min(times) if times else None


# ----- inputs -----


def parse_age(value: str | float | timedelta | None, field: str = "older_than") -> timedelta | None:
    """'2h', '90m', '1d', '45s' (or seconds, or a timedelta) as a timedelta; None stays None."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = _AGE.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f"{value!r} is not an age", field=field, fix="write a number and a unit: 45s, 30m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def format_age(age: timedelta | None) -> str:
    """A short age for tables: 42s, 17m, 3h05m, 2d04h ('' when unknown)."""
    if age is None:
        return ""
    seconds = max(int(age.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def check_names(lab: str | None, learners: Iterable[str]) -> None:
    """Refuse a lab or learner filter that no lab could carry (before any AWS call)."""
    for learner in learners:
        LabConfig(lab=lab or "auroralab", learner=learner)
    if lab is not None:
        LabConfig(lab=lab)


def class_backends(
    regions: Sequence[str] = (), backend: str | Backend | None = None, backends: Sequence[Backend] = ()
) -> list[Backend]:
    """One backend per region: those given; else the given backend (in its own region, or of its kind in each
    region asked for); else one of the named kind (sandbox by default) per region."""
    if backends:
        return list(backends)
    if isinstance(backend, Backend) and not regions:
        return [backend]
    chosen = list(dict.fromkeys(regions)) or [LabConfig.load().region]
    for region in chosen:
        LabConfig(region=region)  # refuses an unknown region naming the field
    kind = backend.name if isinstance(backend, Backend) else backend
    return [get_backend(kind, region) for region in chosen]


# ----- the scan -----


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _seen(
    region: str, resource_type: type[ResourceType], item: dict[str, Any], tags: list[dict[str, str]] | None
) -> Seen:
    describe = resource_type.listing()
    found = tag_dict(tags)
    return Seen(
        region,
        resource_type.kind_of(item),
        resource_type.id_of(item),
        (item.get(describe.name) if describe.name else None) or found.get("Name", ""),
        found.get(TAG_LAB),
        found.get(TAG_LEARNER),
        state=resource_type.state_of(item),
        created=_when(item.get(describe.created)),
        size=str(item.get(describe.size) or ""),
        public_ip=bool(describe.public_ip) and describe.public_ip in item,
        engine=str(item.get("Engine") or ""),
    )


def _read(region: str, client: Any, resource_type: type[ResourceType]) -> list[Seen]:
    """Every resource of one type, whoever owns it, with its tags (read one by one where the listing omits them)."""
    return [
        _seen(region, resource_type, item, resource_type.tags_of(client, item))
        for item in resource_type.all_items(client)
    ]


def _read_all(backend: Backend, types: Sequence[type[ResourceType]], region: str) -> list[Seen]:
    return [seen for t in types for seen in _read(region, backend.client(t.listing().service), t)]


def scan(backends: Sequence[Backend]) -> list[RegionScan]:
    """Read every region once. IAM is global: its resources join the first region where their learner has
    regional resources (else the first region), so each is listed, and deleted, once."""
    types = scanned_types()
    regional = [t for t in types if not t.listing().is_global]
    global_types = [t for t in types if t.listing().is_global]
    scans = [RegionScan(b, _read_all(b, regional, b.region)) for b in backends]
    if not scans:
        return scans
    for item in _read_all(backends[0], global_types, GLOBAL):
        home = next((s for s in scans if (item.lab, item.learner) in s.pairs()), scans[0])
        home.seen.append(item)
    return scans


def now() -> datetime:
    """The current time, timezone-aware (ages are measured against it)."""
    return datetime.now(UTC)
