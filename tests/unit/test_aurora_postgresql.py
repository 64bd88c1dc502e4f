"""Aurora PostgreSQL as every layer asks for it (issue #22, items 3 and 5): the config names the engine, its
version rule and catalog resolve 'default' and 'lts', the dialect reads psycopg's errors (libpq's failed
connections carry no SQLSTATE), and the learner-facing words (exercises, notes, cost, lint, the psql service
file) follow the lab's engine. The real servers are exercised by the integration tests."""

from __future__ import annotations

import io
import json
import stat
from types import SimpleNamespace

import psycopg
import pytest

from labkit.app.server import EngineFacts
from labkit.app.userdata import engine_setting, render
from labkit.config import LabConfig
from labkit.engines import ACCESS_DENIED, ENGINES, LOST_CONNECTION, NO_SCHEMA, OTHER, READ_ONLY, engine_of
from labkit.engines.aurora_postgresql import AURORA_POSTGRESQL
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.lab.plan import plan

PG = AURORA_POSTGRESQL
DIALECT = PG.dialect


def postgresql_catalog(backend) -> None:
    """The strict layer answers the catalog calls for Aurora PostgreSQL (its description's catalog)."""
    catalog = backend.strict.catalog  # its handlers are bound to this object: change it in place
    catalog.engine, catalog.versions, catalog.default = PG, dict(PG.catalog.versions), PG.catalog.default
    catalog.classes = PG.instance_classes


# ----- the config -----


def test_the_engine_is_a_config_field_that_engine_of_reads():
    config = LabConfig(engine="Aurora-PostgreSQL ")
    assert config.engine == "aurora-postgresql" and engine_of(config) is PG
    assert config.db_port == 5432 and LabConfig().db_port == ENGINES["aurora-mysql"].port
    assert LabConfig.from_mapping(json.loads(json.dumps(config.to_dict()))) == config


def test_the_engine_survives_the_toml_file(lab_home):
    saved = LabConfig(engine="aurora-postgresql", engine_version="16.8").save()
    assert 'engine = "aurora-postgresql"' in saved.read_text()
    assert LabConfig.load() == LabConfig(engine="aurora-postgresql", engine_version="16.8")


@pytest.mark.parametrize(
    ("version", "says"),
    [
        ("13.9", "Aurora PostgreSQL 13 and older are out of standard support"),
        ("16", "version like 16.8"),
        ("16.8.1", "version like 16.8"),
        ("8.0.mysql_aurora.3.10.1", "it is an Aurora MySQL version (engine = 'aurora-mysql')"),
        ("1\u0666.8", "Aurora PostgreSQL"),  # an Arabic-Indic digit: ASCII only
    ],
)
def test_a_version_that_is_not_aurora_postgresqls_is_refused_with_the_fix(version, says):
    with pytest.raises(ConfigError) as refused:
        LabConfig(engine="aurora-postgresql", engine_version=version)
    assert refused.value.field == "engine_version" and says in str(refused.value)


def test_a_postgresql_version_on_the_mysql_engine_says_whose_it_is():
    with pytest.raises(ConfigError) as refused:
        LabConfig(engine_version="16.8")
    assert "it is an Aurora PostgreSQL version (engine = 'aurora-postgresql')" in refused.value.message


def test_switching_the_engine_of_a_config_pinned_to_the_other_engines_version_is_refused():
    config = LabConfig(engine_version="8.0.mysql_aurora.3.10.1")
    with pytest.raises(ConfigError) as refused:
        config.engine = "aurora-postgresql"
    assert refused.value.field == "engine_version" and config.engine == "aurora-mysql"


def test_the_cli_flag_comes_from_the_field():
    from labkit.cli.main import build_parser
    from labkit.cli.options import config_from_args

    args = build_parser().parse_args(["plan", "--engine", "aurora-postgresql", "--engine-version", "lts"])
    config = config_from_args(args)
    assert (config.engine, config.engine_version) == ("aurora-postgresql", "lts")


def test_the_setup_form_offers_the_engine(lab_home):
    from labkit.workbook.form import config_form

    form = config_form()
    assert list(form.widgets["engine"].options) == list(ENGINES)
    form.widgets["engine"].value = "aurora-postgresql"
    assert form.save().engine == "aurora-postgresql" and LabConfig.load().engine == "aurora-postgresql"


# ----- versions, resolved at plan time -----


@pytest.mark.parametrize(("wanted", "resolved", "how"), [
    ("default", "15.10", "the region's default"),
    ("lts", "17.7", "the newest long-term-support version"),
    ("16.10", "16.10", "pinned in the config"),
])  # fmt: skip
def test_default_lts_and_a_pin_resolve_from_the_catalog(strict_backend, wanted, resolved, how):
    postgresql_catalog(strict_backend)
    notes = plan(LabConfig(engine="aurora-postgresql", engine_version=wanted), strict_backend).notes
    assert any(note.startswith(f"Aurora PostgreSQL {resolved} ({how})") for note in notes), notes


def test_a_retired_pin_fails_the_plan_and_the_cluster_gets_the_resolved_version(strict_backend):
    postgresql_catalog(strict_backend)
    seen: list[dict] = []
    strict_backend.session().events.register(
        "before-parameter-build.rds.CreateDBCluster", lambda params, **_: seen.append(dict(params))
    )
    with pytest.raises(ConfigError) as refused:
        plan(LabConfig(engine="aurora-postgresql", engine_version="16.6"), strict_backend)  # deprecated
    assert refused.value.field == "engine_version" and "deprecated" in refused.value.message
    config = LabConfig(engine="aurora-postgresql", readers=0)
    for stage in ("network", "database"):
        apply(config, strict_backend, stream=io.StringIO(), only=stage, leave_exercises=True)
    assert [(p["Engine"], p["EngineVersion"]) for p in seen] == [("aurora-postgresql", "15.10")]


def test_lts_takes_the_newest_lts_minor_the_region_still_offers(strict_backend):
    postgresql_catalog(strict_backend)
    strict_backend.strict.catalog.retire("17.7")
    notes = plan(LabConfig(engine="aurora-postgresql", engine_version="lts"), strict_backend).notes
    assert any(note.startswith("Aurora PostgreSQL 16.8 (the newest long-term-support version)") for note in notes)


# ----- the dialect -----


@pytest.mark.parametrize(("sqlstate", "kind"), [
    ("25006", READ_ONLY), ("08006", LOST_CONNECTION), ("08001", LOST_CONNECTION), ("57P01", LOST_CONNECTION),
    ("28P01", ACCESS_DENIED), ("28000", ACCESS_DENIED), ("3D000", NO_SCHEMA), ("42P01", NO_SCHEMA),
    ("23503", OTHER), ("42601", OTHER),
])  # fmt: skip
def test_psycopgs_errors_mean_what_the_learner_must_do(sqlstate, kind):
    error = psycopg.errors.lookup(sqlstate)("words")
    assert DIALECT.error_code(error) == sqlstate and DIALECT.kind(sqlstate) == kind
    assert DIALECT.code_in_text(f"{type(error).__name__}: words") == sqlstate  # as a failed sample keeps it


@pytest.mark.parametrize(("text", "code"), [
    ('connection failed: connection to server at "127.0.0.1", port 5 failed: FATAL:  password authentication '
     'failed for user "admin"', "28P01"),
    ('connection failed: connection to server at "127.0.0.1", port 5 failed: FATAL:  database "shop" does not exist',
     "3D000"),
    ('connection failed: connection to server at "127.0.0.1", port 5 failed: Connection refused', "08001"),
    ("server closed the connection unexpectedly", "08001"),
])  # fmt: skip
def test_a_failed_connection_without_a_sqlstate_is_read_from_libpqs_words(text, code):
    error = psycopg.OperationalError(text)
    assert error.sqlstate is None and DIALECT.error_code(error) == code
    assert DIALECT.code_in_text(f"OperationalError: {text}") == code
    assert EngineFacts.from_json(engine_setting(PG)).code(error) == (code if code != "08001" else None)


def test_the_first_line_of_the_servers_words_is_the_message():
    error = psycopg.errors.UndefinedTable('relation "orders" does not exist\nLINE 1: SELECT * FROM orders')
    assert DIALECT.error_message(error) == 'relation "orders" does not exist'
    assert DIALECT.error_message(None, "fallback") == "fallback" and DIALECT.error_code(None) == ""


def test_the_read_your_writes_wait_is_bounded_and_needs_no_function():
    assert DIALECT.position_query == "SELECT CAST(pg_current_wal_lsn() AS text)"
    wait = DIALECT.wait_query
    assert ":position" in wait and ":seconds" in wait and "CREATE" not in wait.upper()
    assert "NOT pg_is_in_recovery()" in wait  # on a primary (a lab with no reader) it answers at once


# ----- what leaves labkit: the web app's environment and user data -----


def test_the_web_app_gets_the_driver_its_engine_needs():
    facts = EngineFacts.from_json(engine_setting(PG))
    assert facts.driver["module"] == "psycopg" and facts.new_row_id == "returning"
    assert facts.driver["local_socket"].format(port=5432) == ".s.PGSQL.5432"
    assert facts.code(psycopg.errors.ForeignKeyViolation("no parent")) in facts.no_parent
    user_data = render(_settings(PG))
    assert "'psycopg[binary]>=3.1'" in user_data and "pymysql" not in user_data


def _settings(engine):
    from labkit.app.server import Settings

    return Settings(cluster="auroralab-learner1-cluster", region="us-east-1", engine=engine_setting(engine))


# ----- the learner's words -----


def test_exercises_name_the_labs_port_and_database(lab_home):
    from labkit.workbook.exercises import exercise, exercises
    from labkit.workbook.exercises.base import YourTurn

    postgres = LabConfig(engine="aurora-postgresql")
    task = exercise("01.db-ingress", postgres).exercise.task
    assert "PostgreSQL" in task and "tcp 5432" in task and "{" not in task
    assert "tcp 3306" in exercise("01.db-ingress", LabConfig()).exercise.task
    assert "port=config.db_port" in exercise("01.db-ingress", postgres).solution().body
    assert all("5432" in hint for hint in exercise("01.app-egress", postgres).exercise.hints[1:])
    postgres.save()
    assert "tcp 5432" in exercises().set_index("exercise").loc["03.fix-reach", "task"]
    with pytest.raises(YourTurn) as stop:
        import labkit

        labkit.your_turn("01.app-egress")
    assert "tcp 5432" in str(stop.value)


def test_every_engine_explains_every_topic_the_notebooks_ask():
    from labkit.workbook.explain import explain, topics

    assert set(topics()) == {"servers", "identity", "read-only", "client", "c-path"}
    assert "aurora_db_instance_identifier()" in repr(explain("identity", LabConfig(engine="aurora-postgresql")))
    assert "25006" in explain("read-only", LabConfig(engine="aurora-postgresql"))._repr_markdown_()
    with pytest.raises(ConfigError) as refused:
        explain("vacuum", LabConfig())
    assert refused.value.field == "topic" and "identity" in refused.value.fix


def test_the_cost_says_why_aurora_postgresql_instances_have_no_bundled_price():
    from labkit.lab.cost import plan_cost

    estimate = plan_cost(LabConfig(engine="aurora-postgresql"))
    assert {line.item for line in estimate.lines if line.unit_usd_per_hour is None} == {
        "Aurora writer",
        "Aurora readers",
    }
    assert any("no Aurora PostgreSQL instance prices are bundled" in note for note in estimate.footnotes())
    assert all("no Aurora PostgreSQL" not in note for note in plan_cost(LabConfig()).footnotes())


def test_the_lint_names_the_engines_port_before_the_cluster_exists(strict_backend):
    from labkit.security import lint

    config = LabConfig(engine="aurora-postgresql", learner="pgl")
    apply(config, strict_backend, stream=io.StringIO(), only="network", leave_exercises=True)
    [finding] = [f for f in lint(config, strict_backend).findings if f.check == "db-group-missing-app"]
    assert "tcp 5432" in finding.finding


def test_the_psql_service_file_is_private_and_the_command_never_shows_the_password(tmp_path):
    from labkit.cli.sql import connect_help, option_file

    endpoint = "lab-ada-cluster.cluster-c0ffee123456.us-east-1.rds.amazonaws.com"
    backend = SimpleNamespace(region="us-east-1", endpoint_url=lambda: None, trust_store=lambda: "/home/ca.pem")
    tunnel = SimpleNamespace(to="writer", port=15432, host="127.0.0.1", address="127.0.0.1:15432", backend=backend,
                             target=SimpleNamespace(describe=lambda: "the writer", host=endpoint))  # fmt: skip
    secret = SimpleNamespace(username="admin", password="s3cret:x\\y", secret_arn="arn:secret")
    path = option_file(tmp_path, tunnel, secret, "shop", PG)
    assert path.name == "writer-15432.pgservice" and stat.S_IMODE(path.stat().st_mode) == 0o600
    # verify-full: libpq checks the endpoint's name (host) on the connection it dials to the tunnel (hostaddr)
    assert path.read_text().splitlines() == [
        "[labkit]", f"host={endpoint}", "hostaddr=127.0.0.1", "port=15432", "user=admin", "password=s3cret:x\\y",
        "dbname=shop", "sslmode=verify-full", "sslrootcert=/home/ca.pem",
    ]  # fmt: skip
    shown = connect_help(tunnel, secret, backend, "shop", path, PG)
    assert f"PGSERVICEFILE={path} psql service=labkit" in shown and "s3cret" not in shown


@pytest.mark.parametrize("measure", ["benchmark", "compare"])
def test_a_measurement_without_a_config_speaks_the_saved_labs_engine(lab_home, moto_backend, measure):
    """They chose their driver before reading the saved config, so a PostgreSQL lab got MySQL's choices."""
    import labkit
    from labkit.errors import LabkitError

    LabConfig(engine="aurora-postgresql").save()
    with pytest.raises(LabkitError) as stopped:  # the lab has no cluster: they get as far as looking it up
        getattr(labkit, measure)("writer", driver="psycopg", backend=moto_backend)
    assert stopped.value.field != "driver", stopped.value
