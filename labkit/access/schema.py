"""The lab schema: a small shop (products and orders) that the SQL notebook, the benchmark and the web app use.

`create_schema()` is idempotent: tables are created if missing and the sample rows have fixed keys, so a
rerun changes nothing. The DDL is the cluster engine's (labkit.engines: its `sql.shop_tables`). The sample data is generated from fixed word lists, the same on every machine.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy
from sqlalchemy import text

from labkit.access.sql import explain, lab_engine
from labkit.aws.backend import Backend
from labkit.engines import engine_for
from labkit.errors import ConfigError

COLOURS = ("Red", "Blue", "Green", "Black", "White", "Yellow", "Grey", "Orange", "Purple", "Teal")
THINGS = ("Mug", "Notebook", "T-shirt", "Sticker", "Cap", "Tote bag", "Pen", "Hoodie", "Socks", "Poster")
CUSTOMERS = ("Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia")
SAMPLE_ORDERS = 20
FIRST_ORDER_AT = datetime(2026, 1, 5, 9, 0, 0)


def sample_products(count: int) -> list[dict[str, Any]]:
    """`count` products with fixed ids 1..count (at most 100: ten colours of ten things)."""
    pairs = list(itertools.product(THINGS, COLOURS))[:count]
    return [
        {
            "id": index,
            "sku": f"SKU-{index:04d}",
            "name": f"{colour} {thing}",
            "price_cents": 300 + (index * 137) % 4700,
            "stock": 20 + (index * 53) % 180,
        }
        for index, (thing, colour) in enumerate(pairs, start=1)
    ]


def sample_orders(products: int) -> list[dict[str, Any]]:
    return [
        {
            "id": index,
            "product_id": 1 + (index * 7) % products,
            "customer": CUSTOMERS[index % len(CUSTOMERS)],
            "quantity": 1 + index % 3,
            "created_at": FIRST_ORDER_AT + timedelta(hours=5 * index),
        }
        for index in range(1, SAMPLE_ORDERS + 1)
    ]


def create_schema(products: int = 100, *, config: Any | None = None, backend: Backend | None = None) -> pd.DataFrame:
    """Create the shop's tables on the writer and load the sample rows; returns each table's row count."""
    if not isinstance(products, int) or not 1 <= products <= len(COLOURS) * len(THINGS):
        raise ConfigError(
            f"products={products!r} is out of range",
            field="products",
            fix=f"use 1 to {len(COLOURS) * len(THINGS)} sample products",
        )
    writer = lab_engine("writer", config=config, backend=backend)
    statements = engine_for(writer.dialect.engine).sql
    try:
        with writer.engine.begin() as connection:
            for ddl in statements.shop_tables.values():
                connection.execute(text(ddl))
            for table, rows in (("products", sample_products(products)), ("orders", sample_orders(products))):
                connection.execute(text(_insert_missing(statements.insert_missing, table, rows[0])), rows)
            counts = [
                {"table": table, "rows": connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()}
                for table in statements.shop_tables
            ]
    except sqlalchemy.exc.DBAPIError as exc:
        raise explain(exc, "writer", None, writer.dialect) from None
    return pd.DataFrame(counts)


def _insert_missing(template: str, table: str, row: dict[str, Any]) -> str:
    """The engine's insert-if-absent statement for `table`, with a named placeholder per column of `row`."""
    return template.format(table=table, columns=", ".join(row), values=", ".join(f":{column}" for column in row))
