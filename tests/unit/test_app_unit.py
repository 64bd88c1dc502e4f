"""The web app without a sandbox: pages, validation, escaping, bound parameters, the form token, health on
a dead database; its user data; and the instance role's policy that lets it read its own cluster only."""

from __future__ import annotations

import ast
import base64
import dataclasses
import io
import json
import logging
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from labkit.app import server
from labkit.app.server import Cluster, Database, NotReady, Served, Settings, ShopApp, render_page, validate
from labkit.app.userdata import (
    CA_BUNDLE,
    CA_FILE,
    USER_DATA_LIMIT,
    app_source,
    engine_setting,
    environment_block,
    environment_from,
    render,
    settings_from,
    settings_script,
    source_from,
)
from labkit.aws.truststore import GLOBAL_BUNDLE
from labkit.engines.aurora_mysql import AURORA_MYSQL

SETTINGS = Settings(cluster="lab-me-cluster", region="us-east-1", engine=engine_setting(AURORA_MYSQL))
PASSWORD = "pw-Never-Shown-42"
ORDERS = [(7, "2026-01-05 09:00:00", "Grace", "Blue Mug", 2)]
PRODUCTS = [(1, "Red Mug"), (2, "Blue Mug")]


class RecordingDb(Database):
    """The app's Database with the network replaced by a recorder (SQL text and parameters kept apart)."""

    def __init__(
        self, fail: BaseException | None = None, orders: list[Any] | None = None, settings: Settings = SETTINGS
    ) -> None:
        super().__init__(settings, discover=lambda s: Cluster("w.example", "r.example", 3306, "admin", PASSWORD))
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.fail = fail
        self.orders = ORDERS if orders is None else orders

    def run(self, role: str, statements: list[tuple[str, tuple[Any, ...]]]) -> Served:
        self.calls += [(role, statement, params) for statement, params in statements] or [(role, "identity", ())]
        if self.fail:
            raise self.fail
        answers = {server.ORDERS_SQL: self.orders, server.PRODUCTS_SQL: PRODUCTS}
        return Served(f"db-{role}", role == "reader", [answers[statement] for statement, _ in statements])

    def execute(self, role: str, statement: str, params: tuple[Any, ...] = ()) -> int:
        self.calls.append((role, statement, params))
        if self.fail:
            raise self.fail
        return 42


def call(app: ShopApp, method: str, path: str, form: dict[str, Any] | None = None, **environ: str):
    body = urlencode(form).encode() if form is not None else b""
    env = {"REQUEST_METHOD": method, "PATH_INFO": path.split("?")[0], "QUERY_STRING": path.partition("?")[2],
           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "HTTP_HOST": "127.0.0.1:8080", **environ}  # fmt: skip
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    text = b"".join(app(env, start_response)).decode()
    return int(seen["status"].split()[0]), seen["headers"], text


def order_form(app: ShopApp, **fields: Any) -> dict[str, Any]:
    return {"token": app.token, "customer": "Ada", "product_id": "2", "quantity": "3", **fields}


def test_page_lists_orders_from_the_reader_and_carries_security_headers():
    db = RecordingDb()
    status, headers, page = call(ShopApp(db), "GET", "/")
    assert status == 200 and "Grace" in page and "Blue Mug" in page
    assert {role for role, _, _ in db.calls} == {"reader"}, "the page reads through the reader endpoint only"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert PASSWORD not in page


def test_a_valid_order_is_written_to_the_writer_with_bound_parameters_and_redirects():
    db = RecordingDb()
    app = ShopApp(db)
    hostile = "Robert'); DROP TABLE orders; --"
    status, headers, _ = call(app, "POST", "/orders", order_form(app, customer=hostile))
    assert status == 303 and headers["Location"] == "/?added=42"
    role, statement, params = db.calls[-1]
    assert role == "writer" and statement == server.INSERT_SQL
    assert params == (2, hostile, 3), "user input travels as parameters"
    assert hostile not in statement and statement.count("%s") == 3


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"customer": ""}, "customer"),
        ({"customer": "   "}, "customer"),
        ({"customer": "x" * 81}, "customer"),
        ({"customer": "bell\x07"}, "customer"),
        ({"product_id": "abc"}, "product_id"),
        ({"product_id": "0"}, "product_id"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "101"}, "quantity"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "1e3"}, "quantity"),
        ({"quantity": "٣"}, "quantity"),  # a non-ASCII digit is not a quantity
    ],
)
def test_bad_fields_are_refused_with_a_message_and_nothing_is_written(fields, field):
    db = RecordingDb()
    app = ShopApp(db)
    status, _, page = call(app, "POST", "/orders", order_form(app, **fields))
    assert status == 400 and f'id="{field}-error"' in page
    assert all(role != "writer" for role, _, _ in db.calls)


def test_validate_normalises_whitespace_and_accepts_the_limits():
    order, errors = validate({"customer": "  Ada   Lovelace ", "product_id": "1", "quantity": "100"})
    assert not errors and order == server.Order(1, "Ada Lovelace", 100)
    assert validate({"customer": "x" * 80, "product_id": "9", "quantity": "1"})[0] is not None


def test_every_value_on_the_page_is_escaped():
    script = "<script>alert('x')</script>"
    page = render_page(
        [(1, "t", script, script, 1)], [(1, script)], "tok\"en", errors={"customer": script},
        values={"customer": script, "quantity": '"><b>'}, notice=script, problem=script,
    )  # fmt: skip
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'value="tok&quot;en"' in page and '"><b>' not in page


def test_a_refused_order_is_shown_again_escaped():
    app = ShopApp(RecordingDb())
    status, _, page = call(app, "POST", "/orders", order_form(app, customer="<img src=x>", quantity="500"))
    assert status == 400 and "&lt;img src=x&gt;" in page and "<img src=x>" not in page


def test_the_form_needs_the_token_and_a_same_origin_post():
    db = RecordingDb()
    app = ShopApp(db)
    assert call(app, "POST", "/orders", order_form(app, token="forged"))[0] == 403
    assert call(app, "POST", "/orders", order_form(app), HTTP_ORIGIN="http://evil.example")[0] == 403
    assert call(app, "POST", "/orders", order_form(app), HTTP_ORIGIN="http://127.0.0.1:8080")[0] == 303
    assert [role for role, _, _ in db.calls].count("writer") == 1


def test_methods_paths_and_sizes():
    app = ShopApp(RecordingDb())
    assert call(app, "GET", "/nowhere")[0] == 404
    status, headers, _ = call(app, "GET", "/orders")
    assert status == 405 and headers["Allow"] == "POST"
    assert call(app, "POST", "/", {})[0] == 405
    big = {"token": app.token, "customer": "x" * 9000}
    assert call(app, "POST", "/orders", big)[0] == 413


def test_an_unknown_product_is_a_field_error_not_a_crash():
    import pymysql

    fk = pymysql.err.IntegrityError(1452, "Cannot add or update a child row: a foreign key constraint fails")
    db = RecordingDb()
    app = ShopApp(db)
    db.execute = lambda *a, **k: (_ for _ in ()).throw(fk)  # the write fails, reads still work
    status, _, page = call(app, "POST", "/orders", order_form(app, product_id="999"))
    assert status == 400 and "That product does not exist." in page


def test_added_order_notice_says_whether_the_reader_has_it_yet():
    app = ShopApp(RecordingDb())
    assert "now visible on the reader" in call(app, "GET", "/?added=7")[2]
    assert "does not show it yet" in call(app, "GET", "/?added=8")[2]


def test_missing_tables_say_how_to_create_them():
    import pymysql

    app = ShopApp(RecordingDb(fail=pymysql.err.ProgrammingError(1146, "Table 'shop.orders' doesn't exist")))
    status, _, page = call(app, "GET", "/")
    assert status == 503 and "create_schema()" in page


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_health_on_a_dead_database_reports_both_down_without_the_password(caplog):
    port = _closed_port()  # nothing listens: the real PyMySQL connect fails
    db = Database(SETTINGS, discover=lambda s: Cluster("127.0.0.1", "127.0.0.1", port, "admin", PASSWORD))
    caplog.set_level(logging.DEBUG)
    status, _, body = call(ShopApp(db), "GET", "/health")
    report = json.loads(body)
    assert status == 503 and report["writer"]["ok"] is False and report["reader"]["ok"] is False
    assert "2003" in report["writer"]["error"]  # MySQL's "can't connect" error
    assert PASSWORD not in body and PASSWORD not in caplog.text


def test_health_when_the_cluster_cannot_be_looked_up_yet():
    def missing(settings: Settings) -> Cluster:
        raise RuntimeError("DBClusterNotFoundFault: lab-me-cluster not found")

    db = Database(SETTINGS, discover=missing)
    status, _, body = call(ShopApp(db), "GET", "/health")
    assert status == 503 and "DBClusterNotFoundFault" in json.loads(body)["writer"]["error"]
    with pytest.raises(NotReady):  # within the retry pause it does not ask AWS again
        db.cluster()


def test_health_is_ok_when_both_answer_and_says_which_is_read_only():
    status, _, body = call(ShopApp(RecordingDb()), "GET", "/health")
    report = json.loads(body)
    assert status == 200 and report["writer"]["read_only"] is False and report["reader"]["read_only"] is True
    assert (report["writer"]["served_by"], report["reader"]["served_by"]) == ("db-writer", "db-reader")
    assert report["reads_from"] == "reader"


def test_the_page_says_which_instance_served_its_read():
    status, _, page = call(ShopApp(RecordingDb()), "GET", "/")
    assert status == 200 and '<b id="served-by">db-reader</b> through the reader endpoint' in page


def test_reads_from_writer_sends_the_page_to_the_writer_and_health_says_so():
    db = RecordingDb(settings=dataclasses.replace(SETTINGS, reads_from="writer"))
    app = ShopApp(db)
    status, _, page = call(app, "GET", "/")
    assert status == 200 and {role for role, _, _ in db.calls} == {"writer"}
    assert '<b id="served-by">db-writer</b> through the writer endpoint' in page
    assert json.loads(call(app, "GET", "/health")[2])["reads_from"] == "writer"


def test_reads_from_comes_from_the_environment_and_a_bad_value_stops_the_app():
    base = {"LABKIT_APP_CLUSTER": "c", "LABKIT_APP_REGION": "us-east-1", "LABKIT_APP_ENGINE": SETTINGS.engine}
    assert Settings.from_env(base).reads_from == "reader"
    assert Settings.from_env({**base, "LABKIT_APP_READS_FROM": "writer"}).reads_from == "writer"
    with pytest.raises(server.BadSettings, match="reader or writer"):
        Settings.from_env({**base, "LABKIT_APP_READS_FROM": "replica"})


def test_the_app_asks_which_instance_answered_as_labkit_does():
    assert Database(SETTINGS).facts.identity == tuple(AURORA_MYSQL.dialect.identity_queries)


def test_cluster_repr_hides_the_password():
    assert PASSWORD not in repr(Cluster("w", "r", 3306, "admin", PASSWORD))


# ----- user data -----


def test_user_data_carries_the_app_and_its_settings_and_is_valid_bash(tmp_path: Path):
    script = render(SETTINGS)
    assert len(script.encode()) <= USER_DATA_LIMIT
    assert ast.dump(ast.parse(source_from(script))) == ast.dump(ast.parse(app_source()))  # the same program
    # the instance verifies the database against AWS's RDS certificate authorities, which the script downloads
    assert settings_from(script) == dataclasses.replace(SETTINGS, ca_file=CA_FILE)
    assert f"-o {CA_FILE} {CA_BUNDLE}" in script and CA_BUNDLE == GLOBAL_BUNDLE
    (tmp_path / "user-data.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "user-data.sh")], capture_output=True).returncode == 0
    assert "LABKIT_APP_BIND=127.0.0.1" in script, "the app listens on the instance only: no inbound rule needed"
    assert "User=labkit-app" in script and "NoNewPrivileges=yes" in script
    assert PASSWORD not in script and "password" not in script.lower()


def test_the_settings_script_changes_one_line_of_the_environment_file_and_restarts(tmp_path: Path):
    """The script Run Command runs on the instance (and the sandbox on its app's file), run here with bash."""
    env_file = tmp_path / "labkit-app.env"
    env_file.write_text(environment_block(render(SETTINGS)) + "\n")
    restarted = tmp_path / "restarted"
    script = settings_script({"LABKIT_APP_READS_FROM": "writer"}, str(env_file), f"touch {restarted}")
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    after = Settings.from_env(environment_from(env_file.read_text()))
    assert after == dataclasses.replace(SETTINGS, reads_from="writer", ca_file=CA_FILE)
    assert env_file.read_text().count("LABKIT_APP_READS_FROM=") == 1 and restarted.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labkit-app.env", "restarted"], "no temporary file left"
    with pytest.raises(ValueError, match="LABKIT_APP_PASSWORD"):
        settings_script({"LABKIT_APP_PASSWORD": "x"})


def test_the_instance_installs_the_mysql_driver_able_to_log_in_to_aurora_mysql_8_4():
    """Aurora MySQL 8.4 users default to caching_sha2_password; PyMySQL's full login to one without TLS needs
    cryptography (its `rsa` extra). Without it the app on an 8.4 cluster could never log in (issue 25, item 3)."""
    script = render(SETTINGS)
    assert "'pymysql[rsa]>=1.1'" in script


def test_settings_from_other_user_data_is_none():
    assert settings_from("#!/bin/bash\necho hello\n") is None
    assert source_from("#!/bin/bash\n") is None


def test_the_app_runs_on_amazon_linux_python_3_9():
    ast.parse(app_source(), feature_version=(3, 9))
    imports = {
        node.names[0].name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "").split(".")[0]
        for node in ast.walk(ast.parse(app_source()))
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    assert "labkit" not in imports, "the file is copied alone onto the instance"
    assert imports - {"__future__", "hmac", "html", "importlib", "json", "logging", "os", "secrets", "socket",
                      "socketserver", "sys", "threading", "time", "collections", "dataclasses", "typing", "urllib",
                      "wsgiref", "boto3"} == set()  # fmt: skip


# ----- provisioning: user data on the instance, the app's policy on the role -----


def test_the_instance_gets_the_app_user_data_and_the_role_a_scoped_policy(strict_backend):
    from labkit.access.lookup import running_instance
    from labkit.aws.tags import NODE_CLUSTER, NODE_IAM_ROLE, resource_name
    from labkit.config import LabConfig
    from labkit.lab.apply import apply
    from labkit.lab.resources.iam import APP_POLICY_NAME

    config = LabConfig()
    apply(config, strict_backend, stream=io.StringIO())
    instance = running_instance(strict_backend, config=config)
    reply = strict_backend.client("ec2").describe_instance_attribute(InstanceId=instance, Attribute="userData")
    settings = settings_from(base64.b64decode(reply["UserData"]["Value"]).decode())
    assert settings is not None and settings.cluster == resource_name(config.lab, config.learner, NODE_CLUSTER)

    role = resource_name(config.lab, config.learner, NODE_IAM_ROLE)
    document = strict_backend.client("iam").get_role_policy(RoleName=role, PolicyName=APP_POLICY_NAME)
    statements = {s["Sid"]: s for s in document["PolicyDocument"]["Statement"]}
    cluster_arn = statements["DescribeTheLabCluster"]["Resource"]
    assert cluster_arn.endswith(f":cluster:{settings.cluster}") and "*" not in cluster_arn
    secret = statements["ReadTheLabClusterSecret"]
    assert secret["Action"] == "secretsmanager:GetSecretValue" and ":secret:rds!cluster-" in secret["Resource"]
    assert secret["Condition"] == {"StringEquals": {"aws:ResourceTag/aws:rds:primaryDBClusterArn": cluster_arn}}


def test_a_lost_app_policy_is_put_back_by_a_rerun(strict_backend):
    from labkit.aws.tags import NODE_IAM_ROLE, resource_name
    from labkit.config import LabConfig
    from labkit.lab.apply import apply
    from labkit.lab.resources.iam import APP_POLICY_NAME

    config = LabConfig()
    apply(config, strict_backend, stream=io.StringIO(), only="compute")
    role = resource_name(config.lab, config.learner, NODE_IAM_ROLE)
    iam = strict_backend.client("iam")
    iam.delete_role_policy(RoleName=role, PolicyName=APP_POLICY_NAME)
    result = apply(config, strict_backend, stream=io.StringIO(), only="compute")
    assert APP_POLICY_NAME in iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert result.completed == [NODE_IAM_ROLE] and not result.created


# ----- the Host allow-list (DNS rebinding) and the connection cap -----


def test_a_dns_rebinding_page_is_refused_even_with_a_matching_origin():
    """evil.example resolving to 127.0.0.1: Host and Origin agree, but the host is not one the app serves."""
    db = RecordingDb()
    app = ShopApp(db, hosts=server.own_names({}))
    evil = {"HTTP_HOST": "evil.example:8080", "HTTP_ORIGIN": "http://evil.example:8080"}
    assert call(app, "POST", "/orders", order_form(app), **evil)[0] == 421
    assert call(app, "GET", "/", HTTP_HOST="evil.example:8080")[0] == 421  # nor the page, with its form token
    assert not [role for role, _, _ in db.calls if role == "writer"]


@pytest.mark.parametrize("host", ["127.0.0.1:54321", "localhost:8080", "LOCALHOST", "[::1]:8080", "ip-10-0-0-5:80"])
def test_loopback_on_any_port_and_the_instance_names_are_served(host):
    app = ShopApp(RecordingDb(), hosts=server.own_names({"LABKIT_APP_HOSTS": "ip-10-0-0-5"}))
    assert call(app, "GET", "/health", HTTP_HOST=host)[0] == 200


@pytest.mark.parametrize("host", ["", "127.0.0.1.evil.example", "127.0.0.1:80:81", "127.0.0.1:x", "[::1"])
def test_odd_host_headers_are_refused(host):
    app = ShopApp(RecordingDb(), hosts=server.own_names({}))
    assert call(app, "GET", "/health", HTTP_HOST=host)[0] == 421


def test_the_instance_answers_to_its_own_host_name():
    assert socket.gethostname().lower() in server.own_names({})


def _get(port: int, path: str = "/health") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_held_connections_beyond_the_cap_get_503_at_once_and_free_their_slots(monkeypatch):
    import threading
    import time
    from wsgiref.simple_server import make_server

    monkeypatch.setattr(server.ThreadingServer, "max_connections", 4)
    httpd = make_server("127.0.0.1", 0, ShopApp(RecordingDb()), server_class=server.ThreadingServer,
                        handler_class=server.QuietHandler)  # fmt: skip
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]  # send nothing
    try:
        started = time.monotonic()
        assert _get(port).startswith(b"HTTP/1.0 503") and time.monotonic() - started < 5
    finally:
        for conn in held:
            conn.close()
    deadline = time.monotonic() + 10
    while not (answer := _get(port)).startswith(b"HTTP/1.0 200") and time.monotonic() < deadline:
        pass  # the held handlers see the close and give their slots back
    httpd.shutdown()
    httpd.server_close()
    assert answer.startswith(b"HTTP/1.0 200") and b'"writer"' in answer


def test_on_aws_a_setting_changes_with_run_command_running_the_settings_script(strict_backend):
    """The base (AWS) backend sends the settings script with AWS-RunShellScript to the lab's instance and waits."""
    import json as json_module

    from labkit.access.lookup import running_instance
    from labkit.config import LabConfig
    from labkit.lab.apply import apply

    config = LabConfig()
    apply(config, strict_backend, stream=io.StringIO(), only="compute")
    instance = running_instance(strict_backend, config=config)
    sent: list[dict[str, Any]] = []
    ssm = strict_backend.client("ssm")
    ssm.meta.events.register(
        "before-call.ssm.SendCommand", lambda params, **_: sent.append(json_module.loads(params["body"]))
    )
    strict_backend.restart_app(instance, {"LABKIT_APP_READS_FROM": "writer"})
    (command,) = sent
    assert command["InstanceIds"] == [instance] and command["DocumentName"] == "AWS-RunShellScript"
    assert command["Parameters"]["commands"] == [settings_script({"LABKIT_APP_READS_FROM": "writer"})]
