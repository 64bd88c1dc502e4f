"""SQL helpers without a database: input checks before any call, error translation, masking, sample data,
and the public API's lazy loading."""

from __future__ import annotations

import subprocess
import sys

import pymysql
import pytest
import sqlalchemy

from labkit.access.schema import create_schema, sample_orders, sample_products
from labkit.access.sql import Credentials, LabEngine, _last_writes, _remember_write, engine, explain, sql
from labkit.engines.aurora_mysql import AURORA_MYSQL
from labkit.errors import ConfigError


class Exploding:
    """A config/backend stand-in that fails the test if anything touches it."""

    def __getattr__(self, name: str):
        raise AssertionError(f"touched {name} before validating the input")


def _db_error(code: int, message: str) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, message))


class FakeTunnel:
    def __init__(self, refusal: str | None) -> None:
        self.refusal = refusal

    def recent_refusal(self, within: float = 5.0, wait: float = 1.0) -> str | None:
        return self.refusal


@pytest.mark.parametrize(
    ("query", "params", "field"),
    [("", None, "query"), ("   ", None, "query"), ("SELECT :a", "a=1", "params"), ("SELECT :a", 7, "params")],
)
def test_bad_sql_input_fails_before_any_call(query, params, field):
    with pytest.raises(ConfigError) as bad:
        sql(query, params=params, config=Exploding(), backend=Exploding())
    assert bad.value.field == field
    assert bad.value.fix


def test_sql_goes_to_databases_not_instances():
    with pytest.raises(ConfigError) as bad:
        engine("i-0123456789abcdef0", config=Exploding(), backend=Exploding())
    assert bad.value.field == "on"


def test_read_only_errors_say_to_use_the_writer():
    error = explain(_db_error(1290, "running with the --read-only option"), "reader", None, AURORA_MYSQL.dialect)
    assert error.field == "on" and "read-only" in error.message and "writer" in error.fix


@pytest.mark.parametrize(
    ("code", "field"), [(1045, "credentials"), (1146, "schema"), (1049, "schema"), (1064, "query")]
)
def test_other_database_errors_name_their_field(code, field):
    assert explain(_db_error(code, "message"), "writer", None, AURORA_MYSQL.dialect).field == field


def test_credentials_never_show_the_password():
    secret = Credentials("admin", "s3cret-Passw0rd", "arn:aws:secretsmanager:us-east-1:1:secret:rds!x")
    assert "s3cret-Passw0rd" not in repr(secret) and "s3cret-Passw0rd" not in str(secret)
    assert "***" in repr(secret)


def test_sample_data_is_fixed_and_valid():
    products = sample_products(100)
    assert [p["id"] for p in products] == list(range(1, 101))
    assert len({p["sku"] for p in products}) == len({p["name"] for p in products}) == 100
    assert all(p["price_cents"] > 0 and p["stock"] >= 0 for p in products)
    assert sample_products(100) == products
    orders = sample_orders(100)
    assert all(1 <= o["product_id"] <= 100 and 1 <= o["quantity"] <= 100 for o in orders)


@pytest.mark.parametrize("count", [0, 101, "10"])
def test_schema_size_is_checked_before_any_call(count):
    with pytest.raises(ConfigError) as bad:
        create_schema(count, config=Exploding(), backend=Exploding())
    assert bad.value.field == "products"


def test_every_public_name_resolves_and_functions_win_over_submodules():
    import labkit.access.sql
    import labkit.access.tunnel.session
    import labkit.lab.apply  # records the submodule on the package, as any internal import does

    for name in labkit.__all__:
        assert getattr(labkit, name) is not None, name
    assert callable(labkit.apply) and labkit.apply.__module__ == "labkit.lab.apply"
    assert callable(labkit.sql) and labkit.sql.__module__ == "labkit.access.sql"
    assert callable(labkit.tunnel) and labkit.tunnel.__module__ == "labkit.access.tunnel.session"


def test_small_tools_do_not_load_the_whole_api():
    probe = "import sys, labkit.aws.backend, labkit.sandbox.procs.session_plugin; print('pandas' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"


def test_a_write_on_an_engine_without_replication_positions_leaves_reads_eventual():
    # Aurora MySQL's replicas have no GTID position to wait for: the position query fails there (1193) and
    # labkit remembers nothing, so a later read on the reader does not wait. SQLite fails the query the same way.
    lab = ("lab", "ada", "aws", "us-east-1")
    _remember_write(
        lab, LabEngine(tunnel=None, engine=sqlalchemy.create_engine("sqlite://"), dialect=AURORA_MYSQL.dialect)
    )
    assert lab not in _last_writes
    assert AURORA_MYSQL.dialect.position_query and AURORA_MYSQL.dialect.wait_query  # the sandbox's MariaDB has them


@pytest.mark.parametrize(
    ("query", "params"), [("SELECT ':abc' AS x", None), ("SELECT :a, :b", {"a": 1}), ("SELECT :a", [{"a": 1}, {}])]
)
def test_a_placeholder_without_a_value_is_refused_before_any_connection(query, params):
    with pytest.raises(ConfigError) as refused:
        sql(query, params=params)  # no sandbox, no backend: refused first
    assert refused.value.field == "params" and "\\:" in refused.value.fix
