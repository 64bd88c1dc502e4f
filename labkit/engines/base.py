"""The description of one Aurora engine: every fact about it that some layer of labkit needs, in one object.

RDS's engine name and port, how its versions are written and chosen, its instance classes and prices, the
client dialect, the SQL of the shop schema and the benchmark, the command-line client, the sandbox's server
and the system packages setup installs. Each layer asks the description (`labkit.engines.engine_of(config)`,
or `engine_for(cluster["Engine"])` for a live cluster) instead of knowing an engine, so a second engine is one
more description module, not a branch in every layer (moto's `default_port(engine)` table and testcontainers'
module per database are the models).

Plain data and pure functions, standard library only, relative imports (see __init__.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .dialect import Dialect

_SIZES = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")


def _family(family: str, *sizes: str) -> tuple[str, ...]:
    return tuple(f"db.{family}.{size}" for size in sizes)


# DB instance classes Aurora offers, the same families for both engines (AWS docs, "Supported DB engines for DB
# instance classes", 2025: each class lists Aurora MySQL 3 and Aurora PostgreSQL; which PostgreSQL versions a
# class runs varies, and `describe_orderable_db_instance_options` says so at plan time).
AURORA_INSTANCE_CLASSES: tuple[str, ...] = (
    ("db.serverless", "db.t3.medium", "db.t3.large", "db.t4g.medium", "db.t4g.large")
    + _family("r5", *_SIZES, "24xlarge")
    + _family("r6g", *_SIZES)
    + _family("r6gd", *_SIZES[1:])
    + _family("r6i", *_SIZES, "24xlarge", "32xlarge")
    + _family("r6id", *_SIZES[1:], "24xlarge", "32xlarge")
    + _family("r7g", *_SIZES)
    + _family("r7i", *_SIZES, "24xlarge", "48xlarge")
    + _family("r8g", *_SIZES, "24xlarge", "48xlarge")
    + _family("x2g", *_SIZES)
)


@dataclass(frozen=True)
class Versions:
    """How the engine's versions are written, which labkit accepts, and which 'lts' means."""

    label: str  # what messages call the versions labkit accepts: "Aurora MySQL 3"
    major: str  # the major line as people say it: "MySQL 3"
    compatibility: str  # "MySQL 8.0 compatible"
    older: str  # why an older major is refused: "Aurora MySQL 2 is MySQL 5.7 and out of standard support"
    pattern: re.Pattern[str]  # a version labkit accepts, in ASCII digits; group 1 is its minor line
    lts_lines: tuple[str, ...]  # long-term-support minor lines, newest first
    example: str  # a version to quote in help and fixes
    fallback: str  # what a backend without a catalog gets for 'default' and 'lts': the newest LTS line's first
    # Other spellings of one release: (pattern, replacement) pairs for `pattern.sub`. An engine whose releases
    # RDS lists in one form and its guide writes in another (Aurora MySQL 8.4: "8.4.mysql_aurora.8.4.7" and
    # "8.4.7") names both here, so a pinned version is looked up in whichever form the region lists.
    aliases: tuple[tuple[re.Pattern[str], str], ...] = ()

    def accepts(self, version: str) -> bool:
        return bool(self.pattern.match(version))

    def line(self, version: str) -> str | None:
        """The line of an accepted version ("3.10"; "8.4"): the pattern's first group that matched (a pattern
        may accept several families, one group each), None for another text."""
        found = self.pattern.match(version)
        return next((group for group in found.groups() if group), None) if found else None

    def spellings(self, version: str) -> tuple[str, ...]:
        """`version` and the other spellings of the same release, the given one first."""
        others = (pattern.sub(replacement, version) for pattern, replacement in self.aliases if pattern.match(version))
        return tuple(dict.fromkeys((version, *others)))

    def sort_key(self, version: str) -> tuple[int, ...]:
        """Versions in release order: by the numbers of their shortest spelling, left to right (so
        "8.4.mysql_aurora.8.4.10" sorts as 8.4.10, after 8.4.8 and after every 8.0.mysql_aurora.3.x.y)."""
        shortest = min(self.spellings(version), key=len)
        return tuple(int(number) for number in re.findall(r"[0-9]+", shortest))


@dataclass(frozen=True)
class Catalog:
    """What RDS offered for the engine in one region on one date: the sandbox answers the catalog calls moto
    lacks (DescribeDBEngineVersions, DescribeOrderableDBInstanceOptions) from it, in every region."""

    as_of: str
    versions: Mapping[str, str]  # version -> status ("available", "deprecated")
    default: str  # the region's default version
    parameter_group_family: str
    major_version: str
    # Versions of another major line, by their prefix: (parameter group family, major version), e.g. "8.4." ->
    # ("aurora-mysql8.4", "8.4"); a version no prefix matches is of the family and major above.
    majors: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Instance classes a version cannot run: version prefix -> class prefixes (a class the engine offers for
    # some versions only). Empty: every class runs on every available version.
    not_orderable: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def family_of(self, version: str) -> tuple[str, str]:
        """(DBParameterGroupFamily, MajorEngineVersion) of one of the catalog's versions."""
        for prefix, family in self.majors.items():
            if version.startswith(prefix):
                return family
        return self.parameter_group_family, self.major_version

    def orderable(self, version: str, instance_class: str) -> bool:
        """Whether an available `version` runs on `instance_class` (the class itself must be the engine's)."""
        return self.versions.get(version) == "available" and not any(
            instance_class.startswith(refused)
            for prefix, classes in self.not_orderable.items()
            if version.startswith(prefix)
            for refused in classes
        )


@dataclass(frozen=True)
class Statements:
    """The SQL labkit runs that is not the same on every engine: DDL and the engine's own status views."""

    shop_tables: Mapping[str, str]  # table -> CREATE TABLE IF NOT EXISTS, in creation order
    insert_missing: str  # insert rows whose key is not there yet: {table}, {columns}, {values}
    bench_writes: str  # the insert workload's table
    bench_lag: str  # replica lag's marker table
    bench_failover: str  # the failover probe's table
    replica_status: str  # the cluster's own lag per replica (Aurora only: elsewhere it fails, and is skipped)
    replica_status_columns: tuple[str, ...]
    # Run after the sample rows (which have fixed keys) are in: an engine whose generated keys do not move past
    # keys given explicitly (PostgreSQL's identity sequences; MySQL's AUTO_INCREMENT does move) moves them here.
    after_sample_rows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Client:
    """The engine's command-line client, and the credentials file that lets it connect without the password
    ever being shown (`labkit tunnel` writes it 0600 and deletes it when the tunnel closes)."""

    program: str
    credentials_suffix: str  # the file's suffix: stale files of a killed tunnel are found by it
    credentials: str  # the file's text: {host}, {port}, {user}, {password}, {database}, {ca}, {server_name}
    command: str  # how to connect with the file: {path} (shell-quoted), {host}, {port}, {user}, {database}
    verifies: str = ""  # what the client checks of the server's certificate with the file, in words


@dataclass(frozen=True)
class Setup:
    """What the sandbox runs for the engine outside Python, and how setup installs it."""

    server_engine: str  # the key of the sandbox's server engine (labkit.sandbox.engines registry)
    server_name: str  # how the lab names the server the sandbox runs for a DB instance ("MariaDB")
    server_program: str  # the server the sandbox runs
    server_variable: str  # the environment variable that points at a server installed elsewhere
    debian_packages: Mapping[str, str]  # program -> Debian package (`make setup` installs them with apt)
    brew_packages: tuple[str, ...]  # the same on macOS
    other_systems: str  # what to install where neither apt nor brew is
    reference_benchmark: str  # the C benchmark the harness is compared with


@dataclass(frozen=True)
class Tls:
    """Encryption in transit: the cluster parameter that makes the engine refuse clients without TLS, and how a
    session says it is encrypted."""

    parameter: str  # the DB cluster parameter: "require_secure_transport" (Aurora MySQL), "rds.force_ssl"
    required: str  # its value that requires TLS: "ON", "1"
    status_query: str  # this session's TLS version and cipher, as one row (version, cipher); empty texts: none
    refusals: tuple[str, ...]  # words of the servers' refusal of a client without TLS (in the error message)


@dataclass(frozen=True)
class AuroraEngine:
    """One Aurora engine as every layer of labkit sees it."""

    name: str  # the `Engine` value RDS knows it by
    display_name: str  # "Aurora MySQL"
    port: int  # the endpoint port RDS gives a cluster that names none
    versions: Versions
    catalog: Catalog
    instance_classes: tuple[str, ...]  # DB instance classes the engine offers
    price_key: str  # the bundled price table's service for its instances
    pricing_filter: Mapping[str, str]  # AmazonRDS get_products terms that select its instance prices
    dialect: Dialect
    sql: Statements
    client: Client
    setup: Setup
    tls: Tls
    bench_c_path: str | None = None  # the module of the benchmark's C-speed path (labkit.bench.capi's shape)
    # The notebooks' few engine-specific sentences (markdown) by topic, shown by labkit.explain(topic, config), so
    # one notebook serves every engine: "servers", "identity", "read-only", "client", "c-path".
    notes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dialect.engine != self.name:
            raise ValueError(f"the {self.name} description has the dialect of {self.dialect.engine}")

    @property
    def family(self) -> str:
        """The open-source engine it is compatible with, as messages and rule descriptions name it ("MySQL")."""
        return self.dialect.server

    def app_facts(self) -> dict[str, Any]:
        """What the web app on the instance needs of the engine, as JSON-able data: the user data writes it
        into the app's environment (labkit.app.server reads it; that file imports nothing of labkit)."""
        dialect = self.dialect
        return {
            "engine": self.name,
            "port": self.port,
            "server": dialect.server,
            "driver": dialect.dbapi.to_dict(),
            "identity": list(dialect.identity_queries),
            "access_denied": sorted(dialect.access_denied_errors),
            "no_table": sorted(dialect.no_schema_errors),
            "no_parent": sorted(dialect.missing_parent_errors),
            "connect_failures": dict(dialect.connect_failures),
            "new_row_id": dialect.new_row_id,
        }

    def __repr__(self) -> str:
        return f"<AuroraEngine {self.name}>"
