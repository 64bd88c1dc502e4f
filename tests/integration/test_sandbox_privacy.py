"""The sandbox's promise "Private" (DESIGN.md) in MariaDB's own terms: no account without a generated password
(not even over its Unix socket), no password a learner can read from the binlog, a master password of its own
per cluster, a home for its owner only. What every engine must do (no login without a password, no password in a
log, files for their owner only) is in the engine contract suite (test_engine_contract_private.py).
"""

from __future__ import annotations

import json
import os
import ssl
import stat
import time
from pathlib import Path

import pymysql
import pytest
from support.sandbox_lab import started_cluster

from labkit.home import labkit_home
from labkit.sandbox.engines.mariadb import socket_path
from labkit.sandbox.state import read_state

MOTO_CONSTANT = "P@55w0rd!"  # moto's managed-secret password, the same for every cluster (FACTS.md)


def _secret_password(backend, cluster: dict) -> str:
    arn = cluster["MasterUserSecret"]["SecretArn"]
    return json.loads(backend.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])["password"]


def _servers(cluster: str) -> dict[str, dict]:
    state = read_state()
    assert state is not None
    return {name: i for name, i in state.instances.items() if i["cluster"] == cluster}


def _connect(port: int, user: str, password: str, **kwargs) -> pymysql.Connection:
    return pymysql.connect(
        host="127.0.0.1", port=port, user=user, password=password, connect_timeout=2, autocommit=True, **kwargs
    )


def _hidden_passwords(home: Path) -> dict[str, str]:
    data = home / "data"
    names = [name for name in ("admin.secret", "repl.secret") if (data / name).exists()]
    return {name: (data / name).read_text().strip() for name in names}


def test_no_passwordless_account_answers_on_any_server(sandbox_backend, sandbox_home):
    started_cluster(sandbox_backend, "nopass", readers=1)
    servers = _servers("nopass")
    assert len(servers) == 2
    for name, server in servers.items():
        for user in ("root", ""):
            with pytest.raises(pymysql.err.OperationalError) as refused:
                _connect(server["port"], user, "")
            assert refused.value.args[0] in (1045, 1698), f"{user!r}@{name}: {refused.value}"
        sock = socket_path(sandbox_home / "data" / "instances" / name, server["server_id"])
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(unix_socket=str(sock), user="root", password="", connect_timeout=2)
        admin = _hidden_passwords(sandbox_home)["admin.secret"]
        with _connect(server["port"], "rdsadmin", admin) as conn, conn.cursor() as cur:
            cur.execute("SELECT User, Host FROM mysql.global_priv WHERE User IN ('root', '')")
            assert cur.fetchall() == ()


def test_admin_and_replication_passwords_never_reach_a_binlog(sandbox_backend, sandbox_home):
    cluster = started_cluster(sandbox_backend, "binlog", readers=1)
    hidden = _hidden_passwords(sandbox_home)
    master = _secret_password(sandbox_backend, cluster)
    for name, server in _servers("binlog").items():
        with _connect(server["port"], "admin", master) as conn, conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            logs = [row[0] for row in cur.fetchall()]
            assert logs, name
            events = []
            for log in logs:
                cur.execute(f"SHOW BINLOG EVENTS IN '{log}'")
                events += [str(row[5]) for row in cur.fetchall()]
        text = "\n".join(events)
        assert "CREATE USER" in text, f"{name}: the master user's creation is replicated, so it is in the binlog"
        for secret, password in hidden.items():
            assert password not in text, f"the {secret} password is readable from SHOW BINLOG EVENTS on {name}"
    # and replication (with its own password) still works: a writer's row reaches the reader
    writer = next(s for s in _servers("binlog").values() if s["role"] == "writer")
    reader = next(s for s in _servers("binlog").values() if s["role"] == "reader")
    with _connect(writer["port"], "admin", master, database="shop") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (7)")
    with _connect(reader["port"], "admin", master, database="shop") as conn, conn.cursor() as cur:
        for _ in range(250):
            try:
                cur.execute("SELECT id FROM t")
                if cur.fetchall() == ((7,),):
                    break
            except pymysql.err.ProgrammingError:
                pass
            time.sleep(0.02)
        else:
            pytest.fail("the writer's row never reached the reader")
    assert set(hidden) == {"admin.secret", "repl.secret"}
    assert hidden["admin.secret"] != hidden["repl.secret"], "the replication user has its own password"


def test_each_cluster_gets_its_own_generated_master_password(sandbox_backend):
    one, two = (
        started_cluster(sandbox_backend, "pw-one", readers=0),
        started_cluster(sandbox_backend, "pw-two", readers=0),
    )
    first, second = _secret_password(sandbox_backend, one), _secret_password(sandbox_backend, two)
    assert first != second
    assert MOTO_CONSTANT not in (first, second) and min(len(first), len(second)) >= 24
    for name, password in (("pw-one", first), ("pw-two", second)):
        (server,) = _servers(name).values()
        with _connect(server["port"], "admin", password) as conn, conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0].startswith("admin@")
        with pytest.raises(pymysql.err.OperationalError):
            _connect(server["port"], "admin", MOTO_CONSTANT)


def test_a_new_home_is_created_for_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "fresh" / "home"))
    old = os.umask(0o022)
    try:
        home = labkit_home()
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_the_daemons_own_connections_verify_the_server_against_the_homes_ca(sandbox_backend, sandbox_home, tmp_path):
    """The hidden admin's connections (readiness, bootstrap, replication, the status monitor) are TLS that checks the
    server's certificate against the home's CA and its name 127.0.0.1, from one context: a server holding another
    CA's certificate gets no admin password. (PyMySQL's default encrypts without checking, and made a context per
    connection, 25-30 ms of the daemon each.)"""
    from labkit.sandbox import tls
    from labkit.sandbox.engines.base import TLS_CA
    from labkit.sandbox.engines.mariadb import MariaDBServer, find_binaries

    started_cluster(sandbox_backend, "verify", readers=0)
    [(name, info)] = _servers("verify").items()
    admin = _hidden_passwords(sandbox_home)["admin.secret"]

    def server(datadir: Path) -> MariaDBServer:  # the daemon's view of the running server (not started here)
        return MariaDBServer(
            name, datadir, info["port"], info["server_id"], admin, find_binaries(), datadir, "unused"
        )  # fmt: skip

    ours = server(sandbox_home / "data" / "instances" / name)
    first, second = ours.admin(), ours.admin()
    try:
        assert first.ctx is second.ctx, "one context for the daemon's connections, not one per connection"
        assert first.ctx.verify_mode == ssl.CERT_REQUIRED and first.ctx.check_hostname
        assert first._sock.getpeercert(), "the server's certificate was checked"
    finally:
        first.close()
        second.close()

    elsewhere = tmp_path / "other-home"
    (elsewhere / "instances" / name).mkdir(parents=True)
    (elsewhere / "instances" / name / TLS_CA).write_bytes(tls.ca_file(elsewhere).read_bytes())  # another CA
    with pytest.raises(pymysql.err.OperationalError) as refused:
        server(elsewhere / "instances" / name).admin()
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
