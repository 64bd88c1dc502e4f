"""Aurora PostgreSQL: the one place labkit states what is particular to it.

The port, the version rule and the catalog the sandbox serves, the price keys, the dialect (psycopg 3,
PostgreSQL's SQLSTATE codes, the identity and WAL-position queries), the shop's and the benchmark's DDL, the
`psql` client and its service file, and the sandbox's PostgreSQL. A unit test (tests/unit/test_engine_literals.py)
fails on a PostgreSQL literal anywhere else in labkit.

Standard library only, relative imports (see __init__.py).
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from .base import AURORA_INSTANCE_CLASSES, AuroraEngine, Catalog, Client, Setup, Statements, Tls, Versions
from .dialect import DBAPI, LOST_CONNECTION, TLS_LIBPQ, Dialect

# Aurora PostgreSQL versions are PostgreSQL's own major.minor ("16.8"); since 13.3, 12.8 and 11.13 there is no
# separate Aurora version number in them (Aurora User Guide, "Identifying versions of Amazon Aurora PostgreSQL").
# Accepted: 14 to 18; Aurora PostgreSQL 13's standard support ended on 2026-02-28. Long-term support is one minor
# version per major, so a "line" here is the version itself (group 1).
VERSIONS = Versions(
    label="Aurora PostgreSQL",
    major="PostgreSQL 14 to 18",
    compatibility="PostgreSQL 14 to 18 compatible",
    older="Aurora PostgreSQL 13 and older are out of standard support",
    pattern=re.compile(r"^(1[4-8]\.[0-9]{1,2})$", re.ASCII),
    # Aurora User Guide, "Using an Aurora PostgreSQL long-term support (LTS) release": one LTS minor per major,
    # 17.7, 16.8, 15.10 and 14.6 (13.9 and older: out of standard support), newest first.
    lts_lines=("17.7", "16.8", "15.10", "14.6"),
    example="16.8",
    fallback="17.7",
)

# What the sandbox offers, assembled on the as-of date from AWS's Aurora PostgreSQL release announcements and its
# LTS list (17.4 to 17.7; 16.6, 16.8, 16.10; 15.10, 15.14; 14.6, 14.15, 14.19), not from a DescribeDBEngineVersions
# listing (none was reachable): non-LTS minors more than 12 months old on that date are marked deprecated, as
# Aurora retires them. The default is the sandbox's own choice, not RDS's: 15.10, the LTS release of the major its
# servers run (Debian 12's PostgreSQL 15), so a lab on 'default' runs the version it names.
CATALOG = Catalog(
    as_of="2025-12-01",
    versions=MappingProxyType(
        {
            "14.6": "available",
            "14.15": "deprecated",
            "14.19": "available",
            "15.10": "available",
            "15.14": "available",
            "16.6": "deprecated",
            "16.8": "available",
            "16.10": "available",
            "17.4": "available",
            "17.5": "available",
            "17.6": "available",
            "17.7": "available",
        }
    ),
    default="15.10",
    parameter_group_family="aurora-postgresql15",
    major_version="15",
    # Each major version is its own parameter group family (aurora-postgresql14 ... 17): a cluster parameter group
    # of one family cannot be used by a cluster of another major version.
    majors=MappingProxyType({f"{major}.": (f"aurora-postgresql{major}", str(major)) for major in range(14, 19)}),
)

# libpq gives a failed connection no SQLSTATE (psycopg's OperationalError has none): the server's words say which.
CONNECT_FAILURES = MappingProxyType(
    {
        "password authentication failed": "28P01",
        "no pg_hba.conf entry": "28000",
        "does not exist": "3D000",  # database "shop" does not exist (a role that does not exist fails the password)
    }
)
CONNECTION_FAILED = "08001"  # SQLSTATE class 08: connection exception (what a refused or lost connection means)

# A read on a reader waits until that replica has replayed the writer's WAL up to :position, polling every 2 ms
# inside one statement, for at most :seconds. It answers 1 at once on a primary (not in recovery: a lab with no
# reader, whose reader endpoint leads to the writer) and where the replay position is NULL (no WAL is replayed
# there), and 0 when the time ran out; no function has to be created for it.
WAIT_QUERY = (
    "SELECT count(*) FROM (SELECT 1 FROM generate_series(0, CAST(ceil(:seconds / 0.002) AS integer)) "
    "WHERE NOT pg_is_in_recovery() OR coalesce(pg_last_wal_replay_lsn() >= CAST(:position AS pg_lsn), true) "
    "OR CAST(pg_sleep(0.002) AS text) IS NULL LIMIT 1) AS caught_up"
)


class AuroraPostgreSQLDialect(Dialect):
    """Aurora PostgreSQL through psycopg 3 (its binary wheels bundle libpq); the sandbox's PostgreSQL 15 hot
    standbys speak the same protocol and SQLSTATE codes."""

    engine = "aurora-postgresql"
    server = "PostgreSQL"
    driver = "postgresql+psycopg"
    connect_args = MappingProxyType({"connect_timeout": 10})
    dbapi = DBAPI(
        module="psycopg",
        requirement="psycopg[binary]>=3.1",  # 3.3 wants Python 3.10: the instance's 3.9 gets 3.2, same API
        database_keyword="dbname",
        options=MappingProxyType({"autocommit": True}),
        local_socket=".s.PGSQL.{port}",  # libpq's name for a server's socket in a folder given as the host
        tls=TLS_LIBPQ,  # sslmode=verify-full, sslrootcert; host is the name verified, hostaddr where it dials
    )  # libpq cannot take a socket the caller dialed (no `deferred`): the sandbox's app pipes one to it instead
    # Aurora PostgreSQL names the instance in aurora_db_instance_identifier(); the sandbox's servers answer it too.
    # A replica is in recovery (pg_is_in_recovery()) on both.
    identity_queries = ("SELECT aurora_db_instance_identifier(), pg_is_in_recovery()",)
    read_only_errors = frozenset({"25006"})  # read_only_sql_transaction: a write on a hot standby or Aurora replica
    # Besides class 08 (connection exception, see kind): the server shut down (a failover fences the old writer),
    # crashed, or is starting up.
    lost_connection_errors = frozenset({"57P01", "57P02", "57P03"})
    access_denied_errors = frozenset({"28P01", "28000"})  # invalid password / invalid authorization
    no_schema_errors = frozenset({"3D000", "3F000", "42P01"})  # no such database, schema, or table
    missing_parent_errors = frozenset({"23503"})  # foreign_key_violation
    connect_failures = CONNECT_FAILURES
    new_row_id = "returning"  # psycopg has no lastrowid: INSERT ... RETURNING id
    # The writer's WAL position after a commit, and a bounded wait for a standby to replay it (the sandbox's hot
    # standbys stream the writer's WAL). Aurora PostgreSQL's readers do not: they read the cluster's shared volume
    # and apply its log to their caches, so whether pg_last_wal_replay_lsn() there follows the writer's
    # pg_current_wal_lsn() is not something Aurora documents or promises. There the wait returns at once when the
    # replay position is NULL and never waits longer than :seconds; reads on a reader stay eventual, as Aurora's are
    # (replica lag typically well under 100 ms).
    position_query = "SELECT CAST(pg_current_wal_lsn() AS text)"
    wait_query = WAIT_QUERY

    def error_code(self, error: BaseException | None) -> str:
        if error is None:
            return ""
        state = getattr(error, "sqlstate", None)
        if state:
            return str(state)
        text = str(error)
        for fragment, code in CONNECT_FAILURES.items():
            if fragment in text:
                return code
        return CONNECTION_FAILED if _is_a(error, "OperationalError") else ""

    def error_message(self, error: BaseException | None, fallback: str = "") -> str:
        if error is None:
            return fallback
        primary = getattr(getattr(error, "diag", None), "message_primary", None)
        text = primary or str(error).strip()
        return text.splitlines()[0] if text else fallback

    def code_in_text(self, text: str) -> str:
        """The SQLSTATE of an error as the benchmark keeps it: `UndefinedTable: relation ...` (psycopg names each
        SQLSTATE's class), or a failed connection's words."""
        name = text.partition(":")[0].strip()
        if name.isidentifier() and name not in ("OperationalError", "Error", "DatabaseError"):
            import psycopg.errors  # the driver, on first use (see dialect.py)

            found: Any = getattr(psycopg.errors, name, None)
            if isinstance(found, type) and getattr(found, "sqlstate", None):
                return str(found.sqlstate)
        for fragment, code in CONNECT_FAILURES.items():
            if fragment in text:
                return code
        return CONNECTION_FAILED if name == "OperationalError" else ""

    def kind(self, code: Any) -> str:
        if isinstance(code, str) and code.startswith("08"):
            return LOST_CONNECTION
        return super().kind(code)


def _is_a(error: BaseException, class_name: str) -> bool:
    return any(cls.__name__ == class_name for cls in type(error).__mro__)


# The shop and the benchmark tables, as aurora_mysql.py's, in PostgreSQL's words: identity columns for
# AUTO_INCREMENT, TIMESTAMP(6) for DATETIME(6), a separate index, ON CONFLICT DO NOTHING for INSERT IGNORE.
STATEMENTS = Statements(
    shop_tables=MappingProxyType(
        {
            "products": """
        CREATE TABLE IF NOT EXISTS products (
            id          INTEGER PRIMARY KEY,
            sku         VARCHAR(16) NOT NULL UNIQUE,
            name        VARCHAR(100) NOT NULL,
            price_cents INTEGER NOT NULL CHECK (price_cents > 0),
            stock       INTEGER NOT NULL CHECK (stock >= 0)
        )""",
            "orders": """
        CREATE TABLE IF NOT EXISTS orders (
            id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            product_id  INTEGER NOT NULL CONSTRAINT orders_product REFERENCES products (id),
            customer    VARCHAR(80) NOT NULL,
            quantity    INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 100),
            created_at  TIMESTAMP(6) NOT NULL DEFAULT LOCALTIMESTAMP(6)
        );
        CREATE INDEX IF NOT EXISTS orders_by_product ON orders (product_id)""",
        }
    ),
    insert_missing="INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING",
    bench_writes="""
    CREATE TABLE IF NOT EXISTS bench_writes (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        worker     INTEGER NOT NULL,
        payload    VARCHAR(64) NOT NULL,
        created_at TIMESTAMP(6) NOT NULL DEFAULT LOCALTIMESTAMP(6)
    )""",
    bench_lag="""
    CREATE TABLE IF NOT EXISTS bench_lag (
        id         BIGINT PRIMARY KEY,
        written_at TIMESTAMP(6) NOT NULL DEFAULT LOCALTIMESTAMP(6)
    )""",
    bench_failover="""
    CREATE TABLE IF NOT EXISTS bench_failover (
        probe      BIGINT PRIMARY KEY,
        served_by  VARCHAR(64) NOT NULL,
        written_at TIMESTAMP(6) NOT NULL DEFAULT LOCALTIMESTAMP(6)
    )""",
    # Aurora PostgreSQL's view of its replicas; the sandbox's servers may answer it too (an equivalent), and where
    # nothing does, the lag measurement says so and goes on.
    replica_status="SELECT server_id, session_id, replica_lag_in_msec FROM aurora_replica_status()",
    replica_status_columns=("server_id", "session_id", "replica_lag_in_msec"),
    # The sample orders have keys 1..20: the identity sequence must start after them.
    after_sample_rows=(
        "SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT GREATEST(MAX(id), 1) FROM orders))",
    ),
)

# `psql` reads a connection service file (libpq's pg_service.conf format: one [service] of key=value lines, the
# password among them, taken to the end of its line) named by PGSERVICEFILE. libpq refuses nothing here, so
# labkit writes it 0600 itself and deletes it when the tunnel closes; `pgbench` takes the same file.
# The service verifies as labkit does: sslmode=verify-full against the CA bundle, the endpoint's name as `host` and
# the tunnel's address as `hostaddr` (libpq verifies host, and dials hostaddr).
CLIENT = Client(
    program="psql",
    credentials_suffix=".pgservice",
    credentials="[labkit]\nhost={server_name}\nhostaddr={host}\nport={port}\nuser={user}\npassword={password}\n"
    "dbname={database}\nsslmode=verify-full\nsslrootcert={ca}\n",
    command="PGSERVICEFILE={path} psql service=labkit",
    verifies="the certificate chain and the endpoint's name (sslmode=verify-full)",
)

# rds.force_ssl (Aurora PostgreSQL; 0 by default, dynamic): pg_hba.conf's rules become hostssl, so a client without
# TLS finds no rule: 'no pg_hba.conf entry for host ..., no encryption' (SQLSTATE 28000).
TLS = Tls(
    parameter="rds.force_ssl",
    required="1",
    status_query="SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    refusals=("no encryption",),
)

SETUP = Setup(
    server_engine="postgresql",
    server_name="PostgreSQL 15",
    server_program="postgres",  # Debian keeps it in /usr/lib/postgresql/15/bin, off the PATH
    server_variable="LABKIT_POSTGRES",
    debian_packages=MappingProxyType(
        {"postgres": "postgresql", "psql": "postgresql-client", "pgbench": "postgresql-client"}
    ),
    brew_packages=("postgresql@15",),
    other_systems="PostgreSQL 15 (server, client and pgbench)",
    reference_benchmark="pgbench",
)

AURORA_POSTGRESQL = AuroraEngine(
    name="aurora-postgresql",
    display_name="Aurora PostgreSQL",
    port=5432,
    versions=VERSIONS,
    catalog=CATALOG,
    instance_classes=AURORA_INSTANCE_CLASSES,
    price_key="aurora-postgresql",
    pricing_filter=MappingProxyType({"databaseEngine": "Aurora PostgreSQL"}),
    dialect=AuroraPostgreSQLDialect(),
    sql=STATEMENTS,
    client=CLIENT,
    setup=SETUP,
    tls=TLS,
    bench_c_path="labkit.bench.libpq",
    notes=MappingProxyType(
        {
            "servers": "In the sandbox each DB instance is a real **PostgreSQL 15** server. Each reader is a hot "
            "standby, made from a base backup of the writer and streaming its WAL, and while a standby is healthy "
            "the writer acknowledges a commit only once a standby has it (synchronous replication). The master user "
            "holds `rds_superuser`, not superuser, as on Aurora. Aurora PostgreSQL's readers read the cluster's "
            "shared storage instead of replaying WAL: the roles and the endpoints behave the same, the mechanism "
            "underneath differs.",
            "identity": "Aurora PostgreSQL names the instance that serves a connection with "
            "`aurora_db_instance_identifier()`, and `pg_is_in_recovery()` is true on a reader; the sandbox's "
            "servers answer both, and `whoami` asks them.",
            "read-only": "A write sent to the reader endpoint fails with SQLSTATE 25006 (*cannot execute ... in a "
            "read-only transaction*); labkit says what to do instead.",
            "client": "In a terminal, `labkit tunnel writer` holds a tunnel open and prints how to connect `psql`, "
            "through a connection service file readable only by you (`PGSERVICEFILE`, deleted when the tunnel "
            "closes; `pgbench` reads it too), or any other tool.",
            "c-path": "Requests go through libpq's C API (psycopg's compiled wrapper, with the simple query "
            'protocol `pgbench -S` uses), so the client adds about what `pgbench`\'s adds; `driver="psycopg"` uses '
            "psycopg's cursor instead.",
        }
    ),
)
