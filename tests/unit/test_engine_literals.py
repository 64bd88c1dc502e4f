"""No MySQL literal outside the MySQL description, no PostgreSQL literal outside the PostgreSQL one: every layer
asks labkit.engines for its engine's facts (issue #22), so an engine is one description module, not a hunt
through the package.

The scan reads labkit's Python sources (code, comments and docstrings alike); the price table's data file is keyed
by each description's price key and is not scanned. Run as a script, it prints the files that name an engine
specific outside the descriptions, for a labkit tree of any age:

    python tests/unit/test_engine_literals.py [ROOT]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What only the MySQL description may say.
MYSQL_LITERALS = {
    "the MySQL port": r"\b3306\b",
    "InnoDB": r"(?i)innodb",
    "PyMySQL": r"(?i)pymysql",
    "the RDS engine name": r"aurora-mysql",
    "Aurora MySQL version text": r"mysql_aurora",
    "a MySQL server variable": r"@@[a-z_]",
    "a MySQL error number": r"\b(1045|1049|1064|1146|1193|1290|1452|1836|2003|2006|2013)\b",
    "the MySQL option file": r"\[client\]|--defaults-extra-file|\.cnf\b",
}
# What only the PostgreSQL description may say.
POSTGRESQL_LITERALS = {
    "the PostgreSQL port": r"\b5432\b",
    "psycopg": r"(?i)psycopg",
    "the RDS engine name": r"aurora-postgresql",
    "a PostgreSQL function": r"\bpg_(is_in_recovery|current_wal_lsn|last_wal_replay_lsn|sleep)\b|aurora_db_instance",
    "a SQLSTATE": r"\b(25006|28P01|28000|3D000|3F000|42P01|23503|57P0[123]|08001)\b",
    "the psql service file": r"PGSERVICEFILE|\.pgservice\b|\.s\.PGSQL",
    "PostgreSQL DDL": r"GENERATED (BY DEFAULT|ALWAYS) AS IDENTITY|ON CONFLICT DO NOTHING",
}
DESCRIPTIONS = ("labkit/engines/",)  # each engine's description module, and the types they fill in
# Modules that are PostgreSQL by nature, each named by its description rather than chosen by a consumer.
POSTGRESQL_BY_NATURE = {
    "labkit/bench/libpq.py": "Aurora PostgreSQL's C-speed benchmark path, libpq through psycopg's compiled wrapper "
    "(the description's bench_c_path names it)",
    "labkit/sandbox/engines/postgresql.py": "the sandbox's PostgreSQL server engine: it runs PostgreSQL 15 and speaks "
    "to it with psycopg (the description's setup.server_engine names it)",
    "labkit/failover_lab/wrapper.py": "AWS's Advanced Python Wrapper, which runs on Aurora PostgreSQL only: it wraps "
    "psycopg and asks Aurora PostgreSQL's functions (the failover lab refuses it on the other engine)",
}
# Modules that are MySQL by nature, each named by its description rather than chosen by a consumer.
BY_NATURE = {
    "labkit/sandbox/engines/mariadb.py": "the sandbox's MariaDB server engine: it runs mariadbd and speaks to it "
    "with PyMySQL (the description's setup.server_engine names it)",
    "labkit/bench/capi.py": "Aurora MySQL's C-speed benchmark path, libmysqlclient's C API (mysql-connector-python's "
    "_mysql_connector) worded as PyMySQL words its errors (the description's bench_c_path names it)",
}


def engine_specific_files(root: Path = ROOT, literals: dict[str, str] = MYSQL_LITERALS) -> dict[str, list[str]]:
    """labkit's Python files outside the descriptions that name one of an engine's `literals`, with what they name."""
    found = {}
    for path in sorted((root / "labkit").rglob("*.py*")):
        relative = path.relative_to(root).as_posix()
        if path.suffix not in (".py", ".pyi") or relative.startswith(DESCRIPTIONS):
            continue
        text = path.read_text(encoding="utf-8")
        named = [what for what, pattern in literals.items() if re.search(pattern, text)]
        if named:
            found[relative] = named
    return found


def test_no_mysql_literal_stands_outside_the_mysql_description():
    found = engine_specific_files()
    assert {path: named for path, named in found.items() if path not in BY_NATURE} == {}


def test_each_by_nature_module_is_still_mysql_and_still_there():
    found = engine_specific_files()
    assert set(BY_NATURE) <= set(found), "a module no longer MySQL-only leaves the allowlist"


def test_the_mysql_description_says_what_the_others_may_not():
    text = (ROOT / "labkit" / "engines" / "aurora_mysql.py").read_text()
    assert all(re.search(pattern, text) for pattern in MYSQL_LITERALS.values())


def test_no_postgresql_literal_stands_outside_the_postgresql_description():
    found = engine_specific_files(literals=POSTGRESQL_LITERALS)
    assert {path: named for path, named in found.items() if path not in POSTGRESQL_BY_NATURE} == {}


def test_each_postgresql_by_nature_module_is_still_postgresql_and_still_there():
    assert set(POSTGRESQL_BY_NATURE) <= set(engine_specific_files(literals=POSTGRESQL_LITERALS))


def test_the_postgresql_description_says_what_the_others_may_not():
    text = (ROOT / "labkit" / "engines" / "aurora_postgresql.py").read_text()
    assert all(re.search(pattern, text) for pattern in POSTGRESQL_LITERALS.values())


def test_the_postgresql_patterns_catch_the_literals_and_nothing_else():
    caught = [
        "port=5432", "import psycopg", 'Engine="aurora-postgresql"', "SELECT pg_is_in_recovery()",
        "if code == '28P01':", "PGSERVICEFILE=x psql", "writer-15432.pgservice", "ON CONFLICT DO NOTHING",
    ]  # fmt: skip
    innocent = ["port 15432", "PostgreSQL", "libpq", "psql", "pg_dump", "error 25007", "as of 2025-12-01"]
    assert all(any(re.search(p, text) for p in POSTGRESQL_LITERALS.values()) for text in caught)
    assert not any(re.search(p, text) for p in POSTGRESQL_LITERALS.values() for text in innocent)


def test_the_patterns_catch_the_literals_and_nothing_else():
    caught = [
        "port=3306", "ENGINE=InnoDB", "import pymysql", 'Engine="aurora-mysql"', "8.0.mysql_aurora.3.10.1",
        "SELECT @@read_only", "if code == 1045:", "[client]\nhost=h", "tunnel-13306.cnf",
    ]  # fmt: skip
    innocent = ["port 13306", "as of 2026-11-01", "port=5432", "MySQL and MariaDB", "errors 1000 to 1999", "@@ "]
    assert all(any(re.search(p, text) for p in MYSQL_LITERALS.values()) for text in caught)
    assert not any(re.search(p, text) for p in MYSQL_LITERALS.values() for text in innocent)


if __name__ == "__main__":
    tree = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for family, literals, by_nature in (("MySQL", MYSQL_LITERALS, BY_NATURE),
                                        ("PostgreSQL", POSTGRESQL_LITERALS, POSTGRESQL_BY_NATURE)):  # fmt: skip
        files = engine_specific_files(tree, literals)
        for name, named in files.items():
            print(f"{name}: {', '.join(named)}{'  (by nature)' if name in by_nature else ''}")
        print(f"{len(files)} files outside the descriptions name a {family} specific")
