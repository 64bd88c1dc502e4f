"""The SQL client's engine specifics sit behind one dialect, chosen by the cluster's Engine (through its engine
description): Aurora MySQL is the one labkit speaks, another engine is refused with the field and the fix, and a
new dialect is one class."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy

from labkit.access import sql as sql_module
from labkit.access.sql import explain, lab_engine
from labkit.config import LabConfig
from labkit.engines import ACCESS_DENIED, LOST_CONNECTION, NO_SCHEMA, OTHER, READ_ONLY, Dialect, engine_for
from labkit.engines.aurora_mysql import AURORA_MYSQL as AURORA_MYSQL_ENGINE
from labkit.engines.aurora_mysql import AuroraMySQLDialect
from labkit.engines.aurora_postgresql import AURORA_POSTGRESQL as AURORA_POSTGRESQL_ENGINE
from labkit.errors import LabkitError
from labkit.sandbox import tls

AURORA_MYSQL = AURORA_MYSQL_ENGINE.dialect
AURORA_POSTGRESQL = AURORA_POSTGRESQL_ENGINE.dialect


def dialect_for(engine: str | None) -> Dialect:
    return engine_for(engine).dialect


def test_aurora_mysql_is_spoken_through_pymysql():
    dialect = dialect_for("aurora-mysql")
    assert isinstance(dialect, AuroraMySQLDialect) and dialect is AURORA_MYSQL
    assert dialect.driver == "mysql+pymysql" and dialect.server == "MySQL"
    assert dialect.connect_args["charset"] == "utf8mb4"
    assert dialect.identity_queries[0] == "SELECT @@aurora_server_id, @@innodb_read_only"


@pytest.mark.parametrize("engine", ["postgres", "mysql", "", None])
def test_an_engine_without_a_dialect_is_refused_with_the_field_and_the_fix(engine):
    with pytest.raises(LabkitError) as refused:
        dialect_for(engine)
    assert refused.value.field == "engine" and repr(engine) in refused.value.message
    assert "aurora-mysql" in refused.value.fix and "aurora-postgresql" in refused.value.fix


@pytest.mark.parametrize(
    ("code", "kind"),
    [(1290, READ_ONLY), (1836, READ_ONLY), (2003, LOST_CONNECTION), (2013, LOST_CONNECTION),
     (1045, ACCESS_DENIED), (1049, NO_SCHEMA), (1146, NO_SCHEMA), (1064, OTHER), (0, OTHER)],
)  # fmt: skip
def test_mysql_error_codes_mean_what_the_learner_must_do(code, kind):
    error = pymysql.err.OperationalError(code, "words")
    assert AURORA_MYSQL.error_code(error) == code and AURORA_MYSQL.error_message(error) == "words"
    assert AURORA_MYSQL.kind(code) == kind


def test_an_error_without_a_code_has_code_zero_and_the_fallback_text():
    assert AURORA_MYSQL.error_code(None) == 0 and AURORA_MYSQL.error_message(None, "fallback") == "fallback"
    assert AURORA_MYSQL.error_code(pymysql.err.InterfaceError("closed")) == 0


class SqlStateError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"state {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("sqlstate", "field"), [("25006", "on"), ("28P01", "credentials"), ("42P01", "schema")])
def test_the_second_engine_is_one_class_and_explain_follows_it(sqlstate, field):
    error = sqlalchemy.exc.OperationalError("SELECT 1", {}, SqlStateError(sqlstate))
    assert explain(error, "reader", None, AURORA_POSTGRESQL).field == field


def test_the_fallback_message_names_the_dialects_server():
    error = sqlalchemy.exc.OperationalError("SELECT 1", {}, SqlStateError("XX000"))
    assert "PostgreSQL error XX000" in explain(error, "writer", None, AURORA_POSTGRESQL).message
    mysql_error = sqlalchemy.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(1064, "syntax"))
    assert "MySQL error 1064: syntax" in explain(mysql_error, "writer", None, AURORA_MYSQL).message


class OpenTunnel:
    host, port, is_open = "127.0.0.1", 13306, True
    target = None  # no endpoint known: the name verified is the target's name

    def close(self) -> None:
        self.is_open = False


class Secrets:
    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        return {"SecretString": '{"username": "admin", "password": "s3cret"}'}


class SecretsOnly:
    name, region = "sandbox", "us-east-1"

    def trust_store(self) -> str:
        return str(tls.ca_file(Path(tempfile.mkdtemp())))

    def client(self, service: str) -> Secrets:
        assert service == "secretsmanager", service
        return Secrets()


def _cluster(engine: str) -> dict[str, Any]:
    return {"DBClusterIdentifier": "c", "Engine": engine, "MasterUsername": "admin",
            "MasterUserSecret": {"SecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:c"}}  # fmt: skip


@pytest.fixture
def cluster_engine(monkeypatch):
    """Point the SQL module at an open tunnel and a cluster whose Engine the test chooses."""
    chosen = {"engine": AURORA_MYSQL.engine}
    monkeypatch.setattr(sql_module, "find_open", lambda *args: OpenTunnel())
    monkeypatch.setattr(sql_module, "lab_cluster", lambda config, backend: _cluster(chosen["engine"]))
    yield chosen
    sql_module.close_engines()


def test_the_engine_is_made_with_the_dialect_the_cluster_engine_names(cluster_engine):
    made = lab_engine("writer", config=LabConfig(learner="dialect1"), backend=SecretsOnly())
    assert made.dialect is AURORA_MYSQL
    assert made.engine.url.drivername == "mysql+pymysql" and made.engine.url.password == "s3cret"


def test_a_cluster_of_another_engine_is_refused_before_an_engine_is_made(cluster_engine):
    cluster_engine["engine"] = "neptune"
    with pytest.raises(LabkitError) as refused:
        lab_engine("writer", config=LabConfig(learner="dialect2"), backend=SecretsOnly())
    assert refused.value.field == "engine"
    assert not sql_module._connections
