"""The web app in a real sandbox: run from the instance's user data, reached through a Session Manager tunnel,
writing to the writer and reading from the reader, blocked by a revoked security-group rule, stopped and
started with its instance."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.sandbox_lab import (
    replication_paused,
    resume_replication_after,
    rotate_master_password,
    sandbox_lab,
)

from labkit.access.lookup import running_instance
from labkit.access.schema import create_schema
from labkit.access.sql import close_engines, sql
from labkit.access.tunnel import close_all
from labkit.access.webapp import web_app
from labkit.aws.tags import NODE_FIRST_DB, db_instance_node, resource_name
from labkit.errors import ConfigError, LabkitError
from labkit.sandbox.state import read_state
from labkit.security import can_reach, revoke_rules

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(sandbox_home):
    config, backend = sandbox_lab("webapp", "ada")
    create_schema(config=config, backend=backend)
    yield config, backend
    close_engines()
    close_all()


@pytest.fixture
def app(lab):
    config, backend = lab
    opened = web_app(config, backend)
    yield opened
    opened.close()


def test_health_through_the_tunnel_sees_a_writer_and_a_read_only_reader(app):
    health = app.health().set_index("endpoint")
    assert health.loc["writer", "ok"] and health.loc["reader", "ok"], health.to_string()
    assert not health.loc["writer", "read_only"] and health.loc["reader", "read_only"]
    assert app.url.startswith("http://127.0.0.1:")


def test_an_order_added_through_the_app_is_on_the_reader_exactly_as_typed(lab, app):
    config, backend = lab
    hostile = "Robert'); DROP TABLE orders; -- <b>"
    order_id = app.add_order(hostile, product_id=5, quantity=3)
    deadline = time.monotonic() + 60  # replication takes milliseconds; a loaded machine, seconds
    while True:
        rows = sql("SELECT customer, product_id, quantity FROM orders WHERE id = :id", on="reader",
                   params={"id": order_id}, config=config, backend=backend)  # fmt: skip
        if len(rows) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows.to_dict("records") == [{"customer": hostile, "product_id": 5, "quantity": 3}]
    status, _, page = app.request("GET", f"/?added={order_id}")
    assert status == 200 and "Robert&#x27;); DROP TABLE orders; -- &lt;b&gt;" in page


def _on_the_reader(order_id: int, config, backend) -> list[dict]:
    rows = sql("SELECT customer, product_id, quantity FROM orders WHERE id = :id", on="reader",
               params={"id": order_id}, config=config, backend=backend)  # fmt: skip
    return rows.to_dict("records")


def test_an_added_order_comes_back_once_the_reader_shows_it_as_a_browser_reloading_would(lab, app):
    config, backend = lab
    reader = resource_name(config.lab, config.learner, db_instance_node(2))

    with replication_paused(reader):
        timer = resume_replication_after(reader, 0.8)  # the replica catches up 0.8 s after the write
        started = time.monotonic()
        order_id = app.add_order("Grace", product_id=12, quantity=3)
        waited = time.monotonic() - started
        timer.join()
        assert _on_the_reader(order_id, config, backend) == [{"customer": "Grace", "product_id": 12, "quantity": 3}]
    assert waited >= 0.7, "add_order returned before the reader showed the order"


def test_a_reader_that_never_catches_up_costs_at_most_the_wait(lab, app):
    config, backend = lab
    reader = resource_name(config.lab, config.learner, db_instance_node(2))
    with replication_paused(reader):
        started = time.monotonic()
        order_id = app.add_order("Linus", product_id=3, quantity=1, reader_wait=0.5)
        waited = time.monotonic() - started
        assert _on_the_reader(order_id, config, backend) == [], "the reader was paused: the order is not there yet"
    assert 0.5 <= waited < 3


def test_the_app_refuses_bad_input_with_the_field_named(app):
    with pytest.raises(ConfigError) as refused:
        app.add_order("Ada", product_id=1, quantity=1000)
    assert refused.value.field == "quantity"
    with pytest.raises(ConfigError) as unknown:
        app.add_order("Ada", product_id=9999, quantity=1)
    assert unknown.value.field == "product_id" and "does not exist" in str(unknown.value)


def test_a_revoked_database_rule_shows_up_as_a_failing_health_until_fixed(lab, app):
    config, backend = lab
    revoke_rules(config, "sg-db", 3306, backend=backend)
    try:
        health = app.health().set_index("endpoint")
        assert not health.loc["writer", "ok"] and not health.loc["reader", "ok"]
        assert "sg-db" in health.loc["writer", "error"] or "3306" in health.loc["writer", "error"]
        status, _, _ = app.request("GET", "/health")
        assert status == 503
    finally:
        verdict = can_reach("instance", "writer", 3306, config, backend)
        for fix in verdict.fixes[:1]:
            fix.apply(backend)
    assert app.health()["ok"].all()


def _app_state(instance_id: str, want_running: bool, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app = (read_state().apps or {}).get(instance_id)
        if (app is not None and app["status"] == "running") == want_running:
            return app or {}
        time.sleep(0.05)
    raise AssertionError(f"the app of {instance_id} did not become {'running' if want_running else 'stopped'}")


def test_the_app_stops_and_starts_with_its_instance(lab):
    config, backend = lab
    instance_id = running_instance(backend, config=config)
    before = _app_state(instance_id, True)
    ec2 = backend.client("ec2")
    ec2.stop_instances(InstanceIds=[instance_id])
    _app_state(instance_id, False)
    with pytest.raises(LabkitError):  # no tunnel to a stopped instance
        web_app(config, backend, timeout=2)
    ec2.start_instances(InstanceIds=[instance_id])
    after = _app_state(instance_id, True)
    assert after["pid"] != before["pid"]
    with web_app(config, backend) as again:
        assert again.health()["ok"].all()


def test_cli_tunnel_app_prints_the_link_and_the_page_answers_through_it(lab):
    import re
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    config, _ = lab
    labkit = Path(sys.executable).with_name("labkit")
    held = subprocess.Popen(
        [str(labkit), "tunnel", "app", "--lab", config.lab, "--learner", config.learner],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = []
        for line in held.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        link = re.search(r"open (http://127\.0\.0\.1:\d+/) in your browser", "".join(lines))
        assert link, "".join(lines)
        assert "port 8080 on the instance" in "".join(lines)
        with urllib.request.urlopen(link.group(1), timeout=15) as page:
            assert page.status == 200 and b"Lab shop" in page.read()
    finally:
        held.send_signal(signal.SIGINT)
        assert held.wait(30) == 0


def test_the_app_reads_a_rotated_secret_again_and_keeps_serving(lab, app):
    config, backend = lab
    assert app.health()["ok"].all()
    rotate_master_password(config, backend, resource_name(config.lab, config.learner, NODE_FIRST_DB))
    health = app.health()
    assert health["ok"].all(), health.to_string()
    assert app.add_order("Frances", product_id=4, quantity=1) > 0


def test_reads_from_writer_is_a_setting_the_app_restarts_with_and_the_page_says_who_served(lab, app):
    """Issue 23 item 3: the app's one supported setting, changed as an operator would (its environment file,
    then a restart), and seen in /health and in the instance that served the page."""
    config, backend = lab
    writer = resource_name(config.lab, config.learner, NODE_FIRST_DB)
    reader = resource_name(config.lab, config.learner, db_instance_node(2))
    instance_id = running_instance(backend, config=config)
    before = _app_state(instance_id, True)
    assert app.page()["served_by"] == reader
    try:
        health = app.configure(reads_from="writer").set_index("endpoint")
        assert health.loc["writer", "page_reads_here"] and not health.loc["reader", "page_reads_here"]
        assert app.page()["served_by"] == writer and app.health_report()["reads_from"] == "writer"
        after = _app_state(instance_id, True)
        assert (after["pid"], after["restarts"]) == (before["pid"], before["restarts"]), "a restart, not a crash"
        env_file = Path(read_state().home) / "apps" / instance_id / "labkit-app.env"
        assert env_file.read_text().count("LABKIT_APP_READS_FROM=writer") == 1
    finally:
        app.configure(reads_from="reader")
    assert app.page()["served_by"] == reader
    with pytest.raises(ConfigError) as refused:
        app.configure(reads_from="replica")
    assert refused.value.field == "reads_from"


def test_a_revoked_rule_refuses_new_connections_while_an_established_one_still_answers(lab):
    """Issue 23: security groups track established connections (as on AWS); 03's break step shows both."""
    from labkit.workbook.held import hold_connection

    config, backend = lab
    held = hold_connection("writer", config, backend)
    try:
        assert held.check()["answers"].tolist() == [True, True]
        revoke_rules(config, "sg-db", 3306, backend=backend)
        try:
            after = held.check().set_index("connection")["answers"]
            assert after.tolist() == [True, False], held.check().to_string()
            assert "sg-db" in held.check()["why"][1] and "stateful" in held.check()["why"][0]
        finally:
            can_reach("instance", "writer", 3306, config, backend).fixes[0].apply(backend)
        assert held.check()["answers"].tolist() == [True, True]
    finally:
        held.close()
