"""What the engine contract suite (tests/integration/test_engine_contract*.py) asks of every engine, and its helpers.

The suite checks each engine labkit describes the same way, through the RDS API and the engine's own driver.
A new engine passes it once it declares here what the suite cannot read from its description: how to tell whether
the master user could bypass what Aurora keeps from it, which of its accounts a careless setup leaves without a
password, and where its servers log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from support.clusters import connect, error_kind, rows

from labkit import sandbox
from labkit.engines import READ_ONLY


def _mysql_superuser(conn: Any) -> bool:
    grants = " ".join(row[0] for row in rows(conn, "SHOW GRANTS"))
    return any(power in grants for power in ("SUPER", "READ_ONLY ADMIN", "ALL PRIVILEGES"))


def _postgresql_superuser(conn: Any) -> bool:
    return rows(conn, "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user") != [(False,)]


SUPERUSER: dict[str, Callable[[Any], bool]] = {  # could the master user bypass a reader's read-only, or more?
    "aurora-mysql": _mysql_superuser,
    "aurora-postgresql": _postgresql_superuser,
}
SUSPECTS = {  # accounts a careless setup leaves without a password (the engine installer's, the sandbox's own)
    "aurora-mysql": ("root", "", "mysql", "admin", "rdsadmin", "rdsrepladmin"),
    "aurora-postgresql": ("postgres", "root", "admin", "rdsadmin", "rdsrepladmin"),
}
LOGS = {  # what a server writes that a learner could read: its logs (and MariaDB's binlogs: SHOW BINLOG EVENTS)
    "aurora-mysql": ("*.log", "binlog.*", "*relay-bin.*"),
    "aurora-postgresql": ("*.log",),
}


def endpoint_connection(engine: str, endpoint: str, password: str, timeout: float = 5) -> Any:
    """The master user's connection to whichever server `endpoint` resolves to (as a learner's client makes it)."""
    host, port = sandbox.resolve(endpoint)
    return connect(engine, host, port, password, timeout=timeout)


def until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """`check()`'s first true answer; an error counts as not yet (a table not replicated, a server restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def events(rds: Any, source_type: str, source: str) -> list[str]:
    """The RDS events of one cluster or DB instance, oldest first."""
    found = rds.describe_events(SourceType=source_type, SourceIdentifier=source)["Events"]
    return [event["Message"] for event in found]


def instance_status(rds: Any, instance: str) -> str:
    return rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]["DBInstanceStatus"]


def refused_as_read_only(engine: str, conn: Any, sql: str) -> None:
    """`sql` fails on `conn` with the engine's read-only error (MySQL 1290, PostgreSQL 25006)."""
    with pytest.raises(Exception) as refused:
        rows(conn, sql)
    assert error_kind(engine, refused.value) == READ_ONLY, refused.value
