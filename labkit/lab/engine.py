"""The engine version and the DB instance class, checked against what RDS offers in the region, at plan time.

A pinned minor version is a time bomb: Aurora keeps a non-LTS minor version about 12 months, and a retired one
fails CreateDBCluster with "Cannot find version" (Aurora User Guide, "Amazon Aurora versions"). So the version
is resolved when the plan is made, from `describe_db_engine_versions`: the region's default, the newest
long-term-support line, or a pinned version that must still be offered and available. Then the DB instance
class must be orderable for it in the region (`describe_orderable_db_instance_options`). A cluster is never
enrolled in paid RDS Extended Support by accident: CreateDBCluster passes
EngineLifecycleSupport=open-source-rds-extended-support-disabled (RDS API reference, CreateDBCluster), so a
major version past its end of standard support fails to create instead of billing for Extended Support.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from labkit.aws.backend import Backend
from labkit.aws.errors import error_code
from labkit.config import LabConfig
from labkit.engines import AuroraEngine, default_engine, engine_of
from labkit.errors import ConfigError

DEFAULT, LTS = "default", "lts"  # engine_version values resolved from the region's catalog
NO_EXTENDED_SUPPORT = "open-source-rds-extended-support-disabled"
AVAILABLE = "available"


@dataclass(frozen=True)
class EngineChoice:
    """The version a new cluster gets and where its instance class can run; `checked` is False when this
    backend's catalog does not answer (then nothing was verified, and the plan says so)."""

    version: str
    how: str  # "pinned in the config", "the region's default", "the newest long-term-support version"
    instance_class: str
    zones: tuple[str, ...] = ()
    checked: bool = True
    engine: str = "engine"  # how it is named: the engine's display name ("Aurora PostgreSQL")

    def describe(self) -> str:
        if not self.checked:
            return f"{self.engine} {self.version} ({self.how}); not checked: this backend has no engine catalog"
        where = f" in {', '.join(self.zones)}" if self.zones else ""
        return f"{self.engine} {self.version} ({self.how}); {self.instance_class} orderable{where}"


class CatalogMissing(Exception):
    """The backend does not answer an RDS catalog call (moto does not implement describe_db_engine_versions)."""


def requested_version(config: LabConfig) -> str:
    """What the config asks for: 'default' (LabConfig's default: the region's current default, never a minor
    version that would retire under the learner), 'lts', or a pinned version."""
    value = config.engine_version.strip()
    if not value or value.lower() in (DEFAULT, LTS):
        return value.lower() or DEFAULT
    return value


def _versions(rds: Any, engine: AuroraEngine, **filters: Any) -> list[dict[str, Any]]:
    try:
        pages = rds.get_paginator("describe_db_engine_versions").paginate(Engine=engine.name, **filters)
        return [item for page in pages for item in page.get("DBEngineVersions", [])]
    except (NotImplementedError, ResponseParserError):  # moto in-process, and moto's server (an HTML 500 page)
        raise CatalogMissing from None
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500 or error_code(exc) in (
            "500",
            "InternalFailure",
            "NotImplemented",
        ):
            raise CatalogMissing from None
        raise


def _accepted(items: list[dict[str, Any]], engine: AuroraEngine) -> list[str]:
    """Available versions among `items` that the engine's rule accepts, oldest first."""
    versions = engine.versions
    found = [
        i["EngineVersion"]
        for i in items
        if i.get("Status", AVAILABLE) == AVAILABLE and versions.accepts(i["EngineVersion"])
    ]
    return sorted(found, key=versions.sort_key)


def check_version_text(version: str, engine: AuroraEngine | None = None) -> str:
    """A pinned version must follow the engine's rule (its own version format), in ASCII digits, before any call."""
    versions = (engine or default_engine()).versions
    if not versions.accepts(version):
        raise ConfigError(
            f"{version!r} is not an {versions.label} version",
            field="engine_version",
            fix="use 'default' (the region's default), 'lts' (the newest long-term-support line) or a version "
            f"such as {versions.example} written in ASCII digits",
        )
    return version


def resolve_version(rds: Any, config: LabConfig) -> tuple[str, str]:
    """(version, how it was chosen), from the region's catalog. Raises ConfigError naming engine_version."""
    engine = engine_of(config)
    versions = engine.versions
    wanted = requested_version(config)
    region = config.region
    if wanted == DEFAULT:
        default = _accepted(_versions(rds, engine, DefaultOnly=True), engine)
        if default:
            return default[-1], "the region's default"
        newest = _accepted(_versions(rds, engine), engine)  # the default is not an accepted version: the newest that is
        if newest:
            return newest[-1], f"the newest {versions.label} version (the region's default is not {versions.major})"
        raise ConfigError(
            f"RDS offers no {versions.label} version in {region}",
            field="engine_version",
            fix="choose another region (`labkit preflight` checks it)",
        )
    if wanted == LTS:
        offered = _accepted(_versions(rds, engine), engine)
        for line in versions.lts_lines:
            on_line = [v for v in offered if versions.line(v) == line]
            if on_line:
                return on_line[-1], "the newest long-term-support version"
        raise ConfigError(
            f"RDS offers no long-term-support {engine.display_name} version ({', '.join(versions.lts_lines)}) in {region}",
            field="engine_version",
            fix="use engine_version = 'default'",
        )
    check_version_text(wanted, engine)
    # A release may be written two ways (the engine's guide and RDS's API may spell it differently, see the
    # description's `aliases`): the catalog is asked for each, and a cluster gets the spelling the region lists.
    pinned: list[dict[str, Any]] = []
    for spelling in versions.spellings(wanted):
        pinned = pinned or _versions(rds, engine, EngineVersion=spelling, IncludeAll=True)
    status = pinned[0].get("Status", AVAILABLE) if pinned else "not offered"
    if status != AVAILABLE:
        newest = _accepted(_versions(rds, engine, DefaultOnly=True), engine) or _accepted(
            _versions(rds, engine), engine
        )
        raise ConfigError(
            f"{wanted} is {status} in {region}: RDS would refuse to create a cluster on it "
            "(Aurora retires a minor version about 12 months after its release)",
            field="engine_version",
            fix=f"use engine_version = 'default'{f' (today {newest[-1]})' if newest else ''} or 'lts'",
        )
    listed = pinned[0].get("EngineVersion", wanted)
    return listed, "pinned in the config" if listed == wanted else f"pinned in the config as {wanted}"


def orderable_zones(rds: Any, engine: AuroraEngine, version: str, instance_class: str) -> tuple[str, ...]:
    """Availability zones where `instance_class` can run `version` (empty: not orderable in the region)."""
    try:
        pages = rds.get_paginator("describe_orderable_db_instance_options").paginate(
            Engine=engine.name, EngineVersion=version, DBInstanceClass=instance_class, Vpc=True
        )
        options = [option for page in pages for option in page.get("OrderableDBInstanceOptions", [])]
    except NotImplementedError:
        raise CatalogMissing from None
    return tuple(sorted({zone["Name"] for option in options for zone in option.get("AvailabilityZones", [])})) or (
        ("(region)",) if options else ()
    )


def _engine_known(rds: Any, engine: AuroraEngine) -> bool:
    """Whether the catalog knows the engine at all (moto has no orderable options for Aurora's engines)."""
    return bool(
        rds.describe_orderable_db_instance_options(Engine=engine.name, MaxRecords=20).get("OrderableDBInstanceOptions")
    )


def choose_engine(backend: Backend, config: LabConfig) -> EngineChoice:
    """Resolve the engine version and check the DB instance class is orderable for it; ConfigError when not."""
    engine = engine_of(config)
    rds = backend.client("rds")
    wanted = requested_version(config)
    if wanted not in (DEFAULT, LTS):
        check_version_text(wanted, engine)
    try:
        version, how = resolve_version(rds, config)
    except CatalogMissing:
        _check_bundled_catalog(wanted, engine, config.region)
        return EngineChoice(
            _fallback(config), "as configured", config.db_instance_class, checked=False, engine=engine.display_name
        )
    zones = orderable_zones(rds, engine, version, config.db_instance_class)
    if not zones:
        if not _engine_known(rds, engine):
            return EngineChoice(version, how, config.db_instance_class, checked=False, engine=engine.display_name)
        raise ConfigError(
            f"{config.db_instance_class} cannot run {version} in {config.region}",
            field="db_instance_class",
            fix="use a class RDS offers for this version here, e.g. db.t4g.medium or db.r6g.large "
            f"(`aws rds describe-orderable-db-instance-options --engine {engine.name}` lists them)",
        )
    return EngineChoice(version, how, config.db_instance_class, zones, engine=engine.display_name)


def _check_bundled_catalog(wanted: str, engine: AuroraEngine, region: str) -> None:
    """A backend without a catalog (moto in-process): a pinned version must at least be one the engine description's
    bundled catalog offers, as the sandbox's catalog would answer; 'default' and 'lts' get its fallback."""
    if wanted in (DEFAULT, LTS):
        return
    catalog = engine.catalog
    listed = [catalog.versions[v] for v in engine.versions.spellings(wanted) if v in catalog.versions]
    status = listed[0] if listed else "not offered"
    if status != AVAILABLE:
        raise ConfigError(
            f"{wanted} is {status} in {region} by labkit's catalog of {catalog.as_of}: RDS would refuse to create a "
            "cluster on it (Aurora retires a minor version about 12 months after its release)",
            field="engine_version",
            fix=f"use engine_version = 'default' (today {catalog.default}) or 'lts'",
        )


def _fallback(config: LabConfig) -> str:
    """The version a backend without a catalog gets: the pinned one, else the newest long-term-support line's
    first release (what 'default' and 'lts' meant when this was written)."""
    wanted = requested_version(config)
    return wanted if wanted not in (DEFAULT, LTS) else engine_of(config).versions.fallback
