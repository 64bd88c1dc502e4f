"""One description per Aurora engine, asked by every layer: the registry answers for a config and for a live
cluster, the description agrees with itself, and what leaves labkit (the web app's environment, the packages
`make system` installs with the system Python) is read from the same description."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from labkit.app.server import EngineFacts
from labkit.app.userdata import engine_setting
from labkit.config import LabConfig
from labkit.engines import DBAPI, ENGINES, default_engine, default_port, described, engine_for, engine_of
from labkit.errors import LabkitError
from labkit.sandbox.engines.base import engine_class

ROOT = Path(__file__).resolve().parents[2]


def test_a_config_and_its_live_cluster_get_the_same_description():
    engine = engine_of(LabConfig())
    assert engine is default_engine() is engine_for(engine.name) is described(engine.name)
    assert engine.dialect.engine == engine.name


@pytest.mark.parametrize("name", ["postgres", "mysql", "", None])
def test_an_engine_labkit_does_not_describe_is_refused_naming_the_field_and_the_engines(name):
    assert described(name) is None
    with pytest.raises(LabkitError) as refused:
        engine_for(name)
    assert refused.value.field == "engine" and all(known in refused.value.fix for known in ENGINES)
    assert default_port(name) == default_engine().port  # a port fallback never fails


@pytest.mark.parametrize("engine", list(ENGINES.values()), ids=list(ENGINES))
def test_each_version_rule_accepts_its_own_catalog_example_and_fallback(engine):
    versions, catalog = engine.versions, engine.catalog
    assert all(versions.accepts(v) for v in (*catalog.versions, catalog.default, versions.example, versions.fallback))
    assert versions.line(versions.fallback) == versions.lts_lines[0]  # 'lts' without a catalog: the newest LTS line
    assert catalog.versions[catalog.default] == "available"
    lines = [versions.line(v) for v in sorted(catalog.versions, key=versions.sort_key)]
    assert lines == sorted(lines, key=versions.sort_key)  # release order keeps the minor lines in order
    assert not versions.accepts(versions.example.replace("1", "\u0661"))  # ASCII digits only


@pytest.mark.parametrize("engine", list(ENGINES.values()), ids=list(ENGINES))
def test_each_engine_has_its_server_in_the_sandbox_and_a_price_in_the_table(engine):
    from labkit.lab.cost import default_table

    assert engine_class(engine.name) is engine_class(engine.setup.server_engine)
    assert engine.price_key in default_table().services
    assert "db.t4g.medium" in engine.instance_classes  # the lab's default class


def test_the_web_app_connects_as_the_description_says(monkeypatch):
    """The app cannot import labkit: it gets the facts as JSON, and must call the driver exactly as labkit does."""
    calls: list[dict] = []
    fake = types.ModuleType("fake_driver")
    fake.connect = lambda **arguments: calls.append(arguments) or arguments
    monkeypatch.setitem(sys.modules, "fake_driver", fake)
    real = default_engine().dialect.dbapi
    dbapi = DBAPI(**{**real.to_dict(), "module": "fake_driver", "timeout_keywords": tuple(real.timeout_keywords)})
    facts = EngineFacts.from_json(json.dumps({**default_engine().app_facts(), "driver": dbapi.to_dict()}))
    login = ("db.example", 5000, "admin", "pw", "shop")
    assert facts.connect(*login, connect_timeout=3, timeout=10) == dbapi.connect(*login, connect_timeout=3, timeout=10)
    assert facts.connect(*login, connect_timeout=3, timeout=10, deferred=True).items() >= dbapi.deferred.items()


def test_the_app_knows_a_refused_mysql_login_as_the_driver_raises_it():
    """PyMySQL 1.1+ puts the server's SQLSTATE on its errors ("28000" for a refused login): the app read it
    before the number, never matched 1045, and so never read a rotated secret again (every page failed)."""
    import pymysql

    facts = EngineFacts.from_json(engine_setting(engine_for("aurora-mysql")))
    refused = pymysql.err.OperationalError(1045, "Access denied for user 'admin'", sqlstate="28000")
    missing = pymysql.err.ProgrammingError(1146, "Table 'shop.orders' doesn't exist", sqlstate="42S02")
    assert facts.code(refused) in facts.access_denied
    assert facts.code(missing) in facts.no_table


def test_the_app_knows_a_postgresql_error_by_its_sqlstate():
    import psycopg

    facts = EngineFacts.from_json(engine_setting(engine_for("aurora-postgresql")))
    assert facts.code(psycopg.errors.InvalidPassword("password authentication failed")) in facts.access_denied
    assert facts.code(psycopg.errors.UndefinedTable('relation "orders" does not exist')) in facts.no_table


def test_the_app_environment_carries_the_dialects_codes():
    engine = default_engine()
    facts = EngineFacts.from_json(engine_setting(engine))
    assert facts.engine == engine.name and facts.port == engine.port and facts.server == engine.dialect.server
    assert set(facts.access_denied) == set(engine.dialect.access_denied_errors)
    assert set(facts.no_table) == set(engine.dialect.no_schema_errors)
    assert (
        facts.identity == tuple(engine.dialect.identity_queries)
        and facts.driver["module"] == engine.dialect.dbapi.module
    )


def test_make_system_reads_the_engines_packages_with_a_python_that_has_no_labkit_dependencies():
    probe = (
        "import runpy, sys; found = runpy.run_path('labkit/workbook/bootstrap.py'); "
        "print('lazy_loader' in sys.modules, sorted(found['APT_PACKAGES'].values()))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    packages = sorted(p for engine in ENGINES.values() for p in engine.setup.debian_packages.values())
    assert out.stdout.strip() == f"False {packages}"
