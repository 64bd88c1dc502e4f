"""What each benchmark request does: a round trip, a point select, a short range scan, or a single-row insert.

Reads use the shop's `products` table (ids 1..N); inserts go to `bench_writes`, a table of their own (its DDL is
the engine's, labkit.engines), so a benchmark never changes the data the other notebooks show. The statements
use the `format` paramstyle (%s), as the engines' DB-API drivers do.

Standard library only (labkit is imported only to report a bad name), because the benchmark's direct path on
AWS ships this module to the EC2 instance with the harness (see onhost.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RANGE_ROWS = 10


@dataclass(frozen=True)
class Workload:
    name: str
    sql: str
    writes: bool
    description: str

    def arguments(self, rng: random.Random, worker: int, keys: int) -> tuple[Any, ...]:
        if self.name == "point":
            return (rng.randint(1, keys),)
        if self.name == "range":
            low = rng.randint(1, max(1, keys - RANGE_ROWS + 1))
            return (low, low + RANGE_ROWS - 1)
        if self.name == "insert":
            return (worker, f"w{worker}-{rng.getrandbits(48):012x}")
        return ()


WORKLOADS = {
    w.name: w
    for w in (
        Workload("select1", "SELECT 1", False, "the baseline round trip: no table, no index"),
        Workload("point", "SELECT id, name, price_cents FROM products WHERE id = %s", False, "one row by primary key"),
        Workload(
            "range",
            "SELECT id, name, price_cents FROM products WHERE id BETWEEN %s AND %s",
            False,
            f"{RANGE_ROWS} consecutive rows by primary key",
        ),
        Workload("insert", "INSERT INTO bench_writes (worker, payload) VALUES (%s, %s)", True, "one row, autocommit"),
    )
}


def find_workload(name: str) -> Workload:
    if name not in WORKLOADS:
        from labkit.errors import ConfigError  # imported here: on the instance this module runs without labkit

        raise ConfigError(f"unknown workload {name!r}", field="workload", fix=f"use one of {', '.join(WORKLOADS)}")
    return WORKLOADS[name]


def dbapi_operation(
    connect: Callable[[], Any], chosen: Workload, worker: int, keys: int, seed: int = 0
) -> tuple[Callable[[], object], Any]:
    """An operation for the harness: one request on this worker's own connection; returns (operation, conn)."""
    connection = connect()
    cursor = connection.cursor()
    rng = random.Random(seed * 1000 + worker)
    sql, arguments = chosen.sql, chosen.arguments

    def operation() -> object:
        cursor.execute(sql, arguments(rng, worker, keys) or None)
        return cursor.fetchall()

    return operation, connection
