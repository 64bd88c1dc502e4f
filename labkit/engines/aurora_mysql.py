"""Aurora MySQL: the one place labkit states what is particular to it.

The port, the version rule and the catalog the sandbox serves, the instance classes and price keys, the
dialect (PyMySQL, MySQL's error numbers, the identity and GTID queries), the InnoDB DDL of the shop and the
benchmark, the `mariadb` client and its option file, and the sandbox's MariaDB. A unit test
(tests/unit/test_engine_literals.py) fails on a MySQL literal anywhere else in labkit.

Standard library only, relative imports (see __init__.py).
"""

from __future__ import annotations

import re
from types import MappingProxyType

from .base import AuroraEngine, Catalog, Client, Setup, Statements, Versions
from .dialect import DBAPI, Dialect

_SIZES = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")


def _family(family: str, *sizes: str) -> tuple[str, ...]:
    return tuple(f"db.{family}.{size}" for size in sizes)


# DB instance classes Aurora MySQL 3 offers (AWS docs, "Supported DB engines for DB instance classes", 2025).
INSTANCE_CLASSES: tuple[str, ...] = (
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

# [0-9] and ASCII: \d takes any Unicode digit. Group 1 is the minor line (3.10).
VERSIONS = Versions(
    label="Aurora MySQL 3",
    major="MySQL 3",
    compatibility="MySQL 8.0 compatible",
    older="Aurora MySQL 2 is MySQL 5.7 and out of standard support",
    pattern=re.compile(r"^8\.0\.mysql_aurora\.(3\.[0-9]{2})\.[0-9]+$", re.ASCII),
    # Aurora User Guide, "Long-term support (LTS) and beta releases for Amazon Aurora MySQL": 3.10 and 3.04.
    lts_lines=("3.10", "3.04"),
    example="8.0.mysql_aurora.3.10.1",
    fallback="8.0.mysql_aurora.3.10.0",
)

# Aurora MySQL 3 as RDS showed it in us-east-1 on the as-of date (Aurora MySQL release notes: 3.05 to 3.07
# deprecated, 3.04 and 3.10 the long-term-support lines).
CATALOG = Catalog(
    as_of="2026-11-01",
    versions=MappingProxyType(
        {
            "8.0.mysql_aurora.3.04.3": "available",
            "8.0.mysql_aurora.3.04.4": "available",
            "8.0.mysql_aurora.3.05.2": "deprecated",
            "8.0.mysql_aurora.3.06.1": "deprecated",
            "8.0.mysql_aurora.3.07.1": "deprecated",
            "8.0.mysql_aurora.3.08.0": "available",
            "8.0.mysql_aurora.3.08.2": "available",
            "8.0.mysql_aurora.3.09.0": "available",
            "8.0.mysql_aurora.3.10.0": "available",
            "8.0.mysql_aurora.3.10.1": "available",
        }
    ),
    default="8.0.mysql_aurora.3.10.1",
    parameter_group_family="aurora-mysql8.0",
    major_version="8.0",
)

ERROR_IN_TEXT = re.compile(r"\((\d{4}),")  # PyMySQL's errors print as (code, "message")


class AuroraMySQLDialect(Dialect):
    """Aurora MySQL through PyMySQL; the sandbox's MariaDB speaks the same protocol and codes."""

    engine = "aurora-mysql"
    server = "MySQL"
    driver = "mysql+pymysql"
    connect_args = MappingProxyType(
        {"connect_timeout": 10, "read_timeout": 60, "write_timeout": 60, "charset": "utf8mb4"}
    )
    dbapi = DBAPI(
        module="pymysql",
        requirement="pymysql>=1.1",
        timeout_keywords=("read_timeout", "write_timeout"),
        options=MappingProxyType({"autocommit": True, "charset": "utf8mb4"}),
        deferred=MappingProxyType({"defer_connect": True}),  # then connection.connect(sock)
    )
    # Aurora names the instance in @@aurora_server_id; MariaDB (the sandbox) in @@report_host, which the
    # sandbox sets to the DB instance identifier (the first query fails there with 1193, unknown variable).
    identity_queries = ("SELECT @@aurora_server_id, @@innodb_read_only", "SELECT @@report_host, @@read_only")
    read_only_errors = frozenset({1290, 1836})  # --read-only option / running in read-only mode
    lost_connection_errors = frozenset({2003, 2006, 2013})  # can't connect / server has gone away / lost
    access_denied_errors = frozenset({1045})
    no_schema_errors = frozenset({1049, 1146})  # unknown database / table doesn't exist
    missing_parent_errors = frozenset({1452})  # a foreign key constraint fails
    # MariaDB's GTIDs (the sandbox). Aurora MySQL's replicas read the cluster volume and have no such position:
    # there the first query fails with 1193 (unknown variable) and reads stay eventual, typically 20 ms behind.
    position_query = "SELECT @@gtid_binlog_pos"
    wait_query = "SELECT MASTER_GTID_WAIT(:position, :seconds)"

    def error_code(self, error: BaseException | None) -> int:
        args = getattr(error, "args", ())
        return args[0] if args and isinstance(args[0], int) else 0

    def error_message(self, error: BaseException | None, fallback: str = "") -> str:
        args = getattr(error, "args", ())
        return str(args[1]) if len(args) > 1 else fallback

    def code_in_text(self, text: str) -> int:
        found = ERROR_IN_TEXT.search(text)
        return int(found.group(1)) if found else 0


STATEMENTS = Statements(
    shop_tables=MappingProxyType(
        {
            "products": """
        CREATE TABLE IF NOT EXISTS products (
            id          INT PRIMARY KEY,
            sku         VARCHAR(16) NOT NULL UNIQUE,
            name        VARCHAR(100) NOT NULL,
            price_cents INT NOT NULL CHECK (price_cents > 0),
            stock       INT NOT NULL CHECK (stock >= 0)
        ) ENGINE=InnoDB""",
            "orders": """
        CREATE TABLE IF NOT EXISTS orders (
            id          BIGINT AUTO_INCREMENT PRIMARY KEY,
            product_id  INT NOT NULL,
            customer    VARCHAR(80) NOT NULL,
            quantity    INT NOT NULL CHECK (quantity BETWEEN 1 AND 100),
            created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            KEY orders_by_product (product_id),
            CONSTRAINT orders_product FOREIGN KEY (product_id) REFERENCES products (id)
        ) ENGINE=InnoDB""",
        }
    ),
    insert_missing="INSERT IGNORE INTO {table} ({columns}) VALUES ({values})",
    bench_writes="""
    CREATE TABLE IF NOT EXISTS bench_writes (
        id         BIGINT AUTO_INCREMENT PRIMARY KEY,
        worker     INT NOT NULL,
        payload    VARCHAR(64) NOT NULL,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    ) ENGINE=InnoDB""",
    bench_lag="""
    CREATE TABLE IF NOT EXISTS bench_lag (
        id         BIGINT PRIMARY KEY,
        written_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    ) ENGINE=InnoDB""",
    bench_failover="""
    CREATE TABLE IF NOT EXISTS bench_failover (
        probe      BIGINT PRIMARY KEY,
        served_by  VARCHAR(64) NOT NULL,
        written_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    ) ENGINE=InnoDB""",
    replica_status=(
        "SELECT server_id, session_id, replica_lag_in_milliseconds FROM information_schema.replica_host_status"
    ),
    replica_status_columns=("server_id", "session_id", "replica_lag_in_milliseconds"),
)

CLIENT = Client(
    program="mariadb",
    credentials_suffix=".cnf",
    credentials="[client]\nhost={host}\nport={port}\nuser={user}\npassword={password}\ndatabase={database}\n",
    command="mariadb --defaults-extra-file={path}",
)

SETUP = Setup(
    server_engine="mariadb",
    server_program="mariadbd",
    server_variable="LABKIT_MARIADBD",
    debian_packages=MappingProxyType(
        {"mariadbd": "mariadb-server", "mariadb": "mariadb-client", "sysbench": "sysbench"}
    ),
    brew_packages=("mariadb", "sysbench"),
    other_systems="MariaDB (server and client, 10.6 or newer) and sysbench",
    reference_benchmark="sysbench",
)

AURORA_MYSQL = AuroraEngine(
    name="aurora-mysql",
    display_name="Aurora MySQL",
    port=3306,
    versions=VERSIONS,
    catalog=CATALOG,
    instance_classes=INSTANCE_CLASSES,
    price_key="aurora-mysql",
    pricing_filter=MappingProxyType({"databaseEngine": "Aurora MySQL"}),
    dialect=AuroraMySQLDialect(),
    sql=STATEMENTS,
    client=CLIENT,
    setup=SETUP,
    bench_c_path="labkit.bench.capi",
)
