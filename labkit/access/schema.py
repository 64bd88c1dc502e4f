"""The lab schema: a small shop (products and orders) that the SQL notebook, the benchmark and the web app use.

`create_schema()` is idempotent: tables are created if missing and the sample rows have fixed keys, so a
rerun changes nothing. The sample data is generated from fixed word lists, the same on every machine.
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
from labkit.errors import ConfigError

TABLES = {
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
    try:
        with writer.engine.begin() as connection:
            for ddl in TABLES.values():
                connection.execute(text(ddl))
            connection.execute(
                text(
                    "INSERT IGNORE INTO products (id, sku, name, price_cents, stock) "
                    "VALUES (:id, :sku, :name, :price_cents, :stock)"
                ),
                sample_products(products),
            )
            connection.execute(
                text(
                    "INSERT IGNORE INTO orders (id, product_id, customer, quantity, created_at) "
                    "VALUES (:id, :product_id, :customer, :quantity, :created_at)"
                ),
                sample_orders(products),
            )
            counts = [
                {"table": table, "rows": connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()}
                for table in TABLES
            ]
    except sqlalchemy.exc.DBAPIError as exc:
        raise explain(exc, "writer", None, writer.dialect) from None
    return pd.DataFrame(counts)
