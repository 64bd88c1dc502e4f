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

from .base import AURORA_INSTANCE_CLASSES, AuroraEngine, Catalog, Client, Setup, Statements, Tls, Versions
from .dialect import DBAPI, TLS_CONTEXT, Dialect

# Two families, one group each for the line ([0-9] and ASCII: \d takes any Unicode digit):
# - Aurora MySQL 3 (MySQL 8.0 compatible): "8.0.mysql_aurora.3.10.1", line "3.10".
# - Aurora MySQL 8.4 (MySQL 8.4 compatible), line "8.4". Its guide writes the simplified number, "8.4.7" (Aurora
#   User Guide, "Aurora MySQL version 8.4 compatible with MySQL 8.4": "8.4.7 is the first minor version in the
#   8.4 major version family"), and RDS's API lists the release as "8.4.mysql_aurora.8.4.7" (the engine versions
#   public tooling records from describe-db-engine-versions, 2026); both are accepted, as one release.
# Aurora MySQL 2 (MySQL 5.7) is refused: out of standard support since 2024-10-31.
VERSIONS = Versions(
    label="Aurora MySQL 3 or 8.4",
    major="Aurora MySQL 3 or 8.4",
    compatibility="MySQL 8.0 or 8.4 compatible",
    older="Aurora MySQL 2 is MySQL 5.7 and out of standard support",
    pattern=re.compile(
        r"^(?:8\.0\.mysql_aurora\.(3\.[0-9]{2})\.[0-9]+|(?:8\.4\.mysql_aurora\.)?(8\.4)\.[0-9]+)$", re.ASCII
    ),
    # Aurora User Guide, "Long-term support (LTS) and beta releases for Amazon Aurora MySQL": 3.10 and 3.04. No
    # source reachable here names an 8.4 LTS release, so 'lts' stays on Aurora MySQL 3.
    lts_lines=("3.10", "3.04"),
    example="8.0.mysql_aurora.3.10.1",
    fallback="8.0.mysql_aurora.3.10.0",
    aliases=(
        (re.compile(r"^(8\.4)\.([0-9]+)$", re.ASCII), r"\1.mysql_aurora.\1.\2"),
        (re.compile(r"^8\.4\.mysql_aurora\.(8\.4\.[0-9]+)$", re.ASCII), r"\1"),
    ),
)

# Aurora MySQL as the sandbox offers it in every region, assembled on the as-of date from AWS's release notes
# (Aurora MySQL Release Notes: the indexes "Database engine updates for Amazon Aurora MySQL version 3" and
# "... version 8.4" and the document history), not from a DescribeDBEngineVersions listing (none is reachable
# here). Release dates, from those indexes:
#   3.04.3 2024-06-26, 3.04.4 2025-05-05, 3.04.6 2026-01-02 (LTS line); 3.05.2 2024-01-31, 3.06.1 2024-06-26 and
#   3.07.1 2024-07-23 (marked "Deprecated" there); 3.08.0 2024-11-18, 3.08.2 2025-04-07, 3.09.0 2025-05-14;
#   3.10.0 2025-07-31, 3.10.1 2025-09-30, 3.10.2 2025-11-20, 3.10.3 2026-01-02, 3.10.4 2026-03-30,
#   3.10.5 2026-07-30, 3.10.6 2026-10-05 (LTS line); 3.11.0 2025-11-13, 3.11.1 2025-12-16; 3.12.0 2026-02-17;
#   3.13.0 2026-08-27; 8.4.7 2026-05-21, 8.4.8 2026-09-03, 8.4.10 2026-10-26.
# Not confirmed, so not here: 3.04.5 and 8.4.9 (no release note found); which 3.08 to 3.11 releases RDS still
# lets a new cluster use (no note marks them deprecated, so they are "available"; a third-party snapshot of the
# API's list in 2026-08 lacked 3.11.0, which no AWS source confirms); RDS's default in any region (the default
# below is the sandbox's choice: the newest release of the newest LTS line, so 'default' and 'lts' agree).
# Aurora MySQL 8.4 lists as "8.4.mysql_aurora.8.4.N" in the API (see VERSIONS), family aurora-mysql8.4.
CATALOG = Catalog(
    as_of="2026-12-05",
    versions=MappingProxyType(
        {
            "8.0.mysql_aurora.3.04.3": "available",
            "8.0.mysql_aurora.3.04.4": "available",
            "8.0.mysql_aurora.3.04.6": "available",
            "8.0.mysql_aurora.3.05.2": "deprecated",
            "8.0.mysql_aurora.3.06.1": "deprecated",
            "8.0.mysql_aurora.3.07.1": "deprecated",
            "8.0.mysql_aurora.3.08.0": "available",
            "8.0.mysql_aurora.3.08.2": "available",
            "8.0.mysql_aurora.3.09.0": "available",
            "8.0.mysql_aurora.3.10.0": "available",
            "8.0.mysql_aurora.3.10.1": "available",
            "8.0.mysql_aurora.3.10.2": "available",
            "8.0.mysql_aurora.3.10.3": "available",
            "8.0.mysql_aurora.3.10.4": "available",
            "8.0.mysql_aurora.3.10.5": "available",
            "8.0.mysql_aurora.3.10.6": "available",
            "8.0.mysql_aurora.3.11.0": "available",
            "8.0.mysql_aurora.3.11.1": "available",
            "8.0.mysql_aurora.3.12.0": "available",
            "8.0.mysql_aurora.3.13.0": "available",
            "8.4.mysql_aurora.8.4.7": "available",
            "8.4.mysql_aurora.8.4.8": "available",
            "8.4.mysql_aurora.8.4.10": "available",
        }
    ),
    default="8.0.mysql_aurora.3.10.6",
    parameter_group_family="aurora-mysql8.0",
    major_version="8.0",
    majors=MappingProxyType({"8.4.": ("aurora-mysql8.4", "8.4")}),
    # Per-version class limits: the AWS table ("Supported DB engines for DB instance classes") says "All currently
    # available versions" for Aurora MySQL on the rows readable here (db.x2g); no row read names a class that
    # some available version cannot run, so none is listed. A limit a source confirms goes here, by prefix.
    not_orderable=MappingProxyType({}),
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
        # With the `rsa` extra (cryptography): Aurora MySQL 8.4 creates users with caching_sha2_password by
        # default (Aurora User Guide, "Aurora MySQL version 8.4 compatible with MySQL 8.4"), and PyMySQL's first
        # login to such a user over a connection without TLS needs the server's RSA key, which it reads only
        # with cryptography installed (else pymysql/_auth.py raises "'cryptography' package is required for
        # sha256_password or caching_sha2_password auth methods").
        requirement="pymysql[rsa]>=1.1",
        timeout_keywords=("read_timeout", "write_timeout"),
        options=MappingProxyType({"autocommit": True, "charset": "utf8mb4"}),
        deferred=MappingProxyType({"defer_connect": True}),  # then connection.connect(sock)
        tls=TLS_CONTEXT,  # ssl=<SSLContext>: PyMySQL verifies the name it wraps the socket with (dialect.py)
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

# The client encrypts and verifies the server's certificate chain against the CA bundle (ssl-ca). Its name check
# (ssl-verify-server-cert) compares the certificate with the host it dials, which through a tunnel is 127.0.0.1, not
# the endpoint, and the mariadb and mysql clients have no option to verify another name: the file verifies the
# chain only, and `labkit tunnel` says so. (labkit's own connections verify the endpoint's name: dialect.py.)
CLIENT = Client(
    program="mariadb",
    credentials_suffix=".cnf",
    credentials="[client]\nhost={host}\nport={port}\nuser={user}\npassword={password}\ndatabase={database}\n"
    "ssl\nssl-ca={ca}\n",
    command="mariadb --defaults-extra-file={path}",
    verifies="the certificate chain (the mariadb client cannot check the endpoint's name through a tunnel)",
)

# require_secure_transport (Aurora MySQL 3 and 8.4; dynamic, off by default): "MySQL Error 3159 (HY000): Connections
# using insecure transport are prohibited while --require_secure_transport=ON" (RDS User Guide, "Requiring SSL/TLS
# for all connections to a MySQL DB instance"). The sandbox's MariaDB (10.5.2+) refuses such a client as if its
# password were wrong: error 1045, "Access denied for user ... (using password: YES)" (it has no error of its own
# for it), which a client that sent the right password without TLS can only read as the refusal.
TLS = Tls(
    parameter="require_secure_transport",
    required="ON",
    status_query="SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')",
    refusals=("insecure transport are prohibited", "Access denied for user"),
)

SETUP = Setup(
    server_engine="mariadb",
    server_name="MariaDB",
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
    instance_classes=AURORA_INSTANCE_CLASSES,
    price_key="aurora-mysql",
    pricing_filter=MappingProxyType({"databaseEngine": "Aurora MySQL"}),
    dialect=AuroraMySQLDialect(),
    sql=STATEMENTS,
    client=CLIENT,
    setup=SETUP,
    tls=TLS,
    bench_c_path="labkit.bench.capi",
    notes=MappingProxyType(
        {
            "servers": "In the sandbox each DB instance is a real **MariaDB** server, speaking MySQL's protocol and "
            "error codes. Each reader replicates the writer with MariaDB's GTID replication, and while a reader is "
            "healthy the writer acknowledges a commit only once the reader has it (semi-synchronous replication). "
            "Aurora MySQL's readers read the cluster's shared storage instead: the roles and the endpoints behave "
            "the same, the mechanism underneath differs.",
            "identity": "Aurora MySQL names the instance that serves a connection in `@@aurora_server_id`, and "
            "`@@innodb_read_only` says whether it is a reader; the sandbox's MariaDB answers `@@report_host` and "
            "`@@read_only` instead. `whoami` asks whichever the server knows.",
            "read-only": "A write sent to the reader endpoint fails with MySQL error 1290 (the server runs with "
            "`--read-only`); labkit says what to do instead.",
            "client": "In a terminal, `labkit tunnel writer` holds a tunnel open and prints how to connect the "
            "`mariadb` or `mysql` client, through an option file readable only by you (`--defaults-extra-file`, "
            "deleted when the tunnel closes), or any other tool.",
            "c-path": "Requests go through libmysqlclient's C API (mysql-connector-python's extension), so the "
            'client adds about what `sysbench`\'s C client adds; `driver="pymysql"` uses the pure-Python driver '
            "instead.",
        }
    ),
)
