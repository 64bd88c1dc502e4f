"""What the SQL client must know about the database engine behind the lab's cluster, one class per engine.

The driver, the query that says which instance answered, and which error codes mean "read-only", "lost the
connection", "wrong password" or "no such schema" differ between engines; everything else in
`labkit.access.sql` does not. The dialect is chosen by the cluster's `Engine` field (`dialect_for(engine)`),
so supporting Aurora PostgreSQL is one more class here, not a branch in every caller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from labkit.errors import LabkitError

# What an error means to the learner, whatever the engine calls it.
READ_ONLY = "read-only"
LOST_CONNECTION = "lost-connection"
ACCESS_DENIED = "access-denied"
NO_SCHEMA = "no-schema"
OTHER = "other"


class Dialect(ABC):
    """One engine as a client sees it. Subclasses fill in the class attributes; instances are stateless."""

    engine: ClassVar[str]  # the RDS `Engine` value this dialect talks to
    server: ClassVar[str]  # how messages name the server ("MySQL")
    driver: ClassVar[str]  # the SQLAlchemy driver name for URL.create
    connect_args: ClassVar[Mapping[str, Any]]  # passed to the DB-API driver's connect()
    identity_queries: ClassVar[tuple[str, ...]]  # (instance name, read-only flag), tried in order until one works
    read_only_errors: ClassVar[frozenset[Any]]
    lost_connection_errors: ClassVar[frozenset[Any]]
    access_denied_errors: ClassVar[frozenset[Any]]
    no_schema_errors: ClassVar[frozenset[Any]]
    # Reading your own writes on a reader (Aurora's aurora_replica_read_consistency = SESSION): the writer's
    # replication position after a commit, and a bounded wait until a replica has applied it. Empty where the
    # engine's replicas offer neither; reads on a reader are then eventual, as Aurora's are by default.
    position_query: ClassVar[str] = ""
    wait_query: ClassVar[str] = ""  # named parameters :position and :seconds

    @abstractmethod
    def error_code(self, error: BaseException | None) -> Any:
        """The engine's code for a DB-API error (0 when it carries none)."""

    @abstractmethod
    def error_message(self, error: BaseException | None, fallback: str = "") -> str:
        """The server's own words for a DB-API error (`fallback` when it carries none)."""

    def kind(self, code: Any) -> str:
        """What an error code means to the learner: READ_ONLY, LOST_CONNECTION, ACCESS_DENIED, NO_SCHEMA or OTHER."""
        for kind, codes in (
            (READ_ONLY, self.read_only_errors),
            (LOST_CONNECTION, self.lost_connection_errors),
            (ACCESS_DENIED, self.access_denied_errors),
            (NO_SCHEMA, self.no_schema_errors),
        ):
            if code in codes:
                return kind
        return OTHER

    def __repr__(self) -> str:
        return f"<{type(self).__name__} dialect for {self.engine}>"


class AuroraMySQL(Dialect):
    """Aurora MySQL through PyMySQL; the sandbox's MariaDB speaks the same protocol and codes."""

    engine = "aurora-mysql"
    server = "MySQL"
    driver = "mysql+pymysql"
    connect_args = MappingProxyType(
        {"connect_timeout": 10, "read_timeout": 60, "write_timeout": 60, "charset": "utf8mb4"}
    )
    # Aurora names the instance in @@aurora_server_id; MariaDB (the sandbox) in @@report_host, which the
    # sandbox sets to the DB instance identifier (the first query fails there with 1193, unknown variable).
    identity_queries = ("SELECT @@aurora_server_id, @@innodb_read_only", "SELECT @@report_host, @@read_only")
    read_only_errors = frozenset({1290, 1836})  # --read-only option / running in read-only mode
    lost_connection_errors = frozenset({2003, 2006, 2013})  # can't connect / server has gone away / lost
    access_denied_errors = frozenset({1045})
    no_schema_errors = frozenset({1049, 1146})  # unknown database / table doesn't exist
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


AURORA_MYSQL = AuroraMySQL()
DIALECTS: dict[str, Dialect] = {dialect.engine: dialect for dialect in (AURORA_MYSQL,)}


def dialect_for(engine: str | None) -> Dialect:
    """The dialect for a cluster's `Engine`, or a LabkitError naming the engines labkit can talk to."""
    if engine not in DIALECTS:
        raise LabkitError(
            f"labkit's SQL client does not speak the cluster's engine {engine!r}",
            field="engine",
            fix=f"create the lab's cluster with one of: {', '.join(sorted(DIALECTS))} (labkit up does)",
        )
    return DIALECTS[engine]
