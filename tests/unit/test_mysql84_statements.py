"""Nothing labkit sends to a real Aurora MySQL uses a statement MySQL 8.4 removed (issue 25, item 3).

Aurora MySQL 8.4 "enforces inclusive replication terminology: older SQL statements such as SHOW SLAVE STATUS,
CHANGE MASTER TO and START SLAVE now return a syntax error" (Aurora User Guide, "Aurora MySQL version 8.4
compatible with MySQL 8.4"); MySQL 8.4 also removed SHOW MASTER STATUS, SHOW SLAVE HOSTS, RESET SLAVE and
RESET MASTER ("What Is New in MySQL 8.4", features removed), replaced by the REPLICA / SOURCE / BINARY LOG forms.
The sandbox's own MariaDB servers (labkit/sandbox) speak MariaDB's syntax and never see a real Aurora; everything
else in labkit (the engine description's statements, access/, bench/, app/ on the instance) must be 8.4-valid.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labkit.engines import default_engine

LABKIT = Path(__file__).resolve().parents[2] / "labkit"
REMOVED = re.compile(
    r"\b(SHOW\s+SLAVE\s+(STATUS|HOSTS)|SHOW\s+MASTER\s+STATUS|CHANGE\s+MASTER\s+TO|(START|STOP|RESET)\s+SLAVE"
    r"|RESET\s+MASTER)\b",
    re.IGNORECASE,
)


def engine_statements() -> list[str]:
    engine = default_engine()
    sql, dialect = engine.sql, engine.dialect
    return [
        *sql.shop_tables.values(), sql.insert_missing, sql.bench_writes, sql.bench_lag, sql.bench_failover,
        sql.replica_status, *dialect.identity_queries, dialect.position_query or "", dialect.wait_query or "",
    ]  # fmt: skip


def test_the_pattern_finds_what_8_4_refuses():
    """The check can fail: each removed form is found, its replacement is not."""
    for removed in ("SHOW SLAVE STATUS", "change master to MASTER_HOST='x'", "START SLAVE", "SHOW MASTER STATUS"):
        assert REMOVED.search(removed), removed
    for kept in ("SHOW REPLICA STATUS", "CHANGE REPLICATION SOURCE TO SOURCE_HOST='x'", "START REPLICA"):
        assert not REMOVED.search(kept), kept


@pytest.mark.parametrize("statement", engine_statements())
def test_the_engine_descriptions_statements_are_valid_on_8_4(statement):
    assert not REMOVED.search(statement)


def test_no_module_that_can_reach_aurora_sends_a_removed_statement():
    found = {
        str(path.relative_to(LABKIT.parent)): match.group(0)
        for path in sorted(LABKIT.rglob("*.py"))
        if "sandbox" not in path.relative_to(LABKIT).parts
        for match in [REMOVED.search(path.read_text(encoding="utf-8"))]
        if match
    }
    assert found == {}
