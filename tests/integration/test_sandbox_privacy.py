"""The sandbox's promise "Private" (DESIGN.md): no account without a generated password, no password a learner can
read from the binlog, a master password of its own per cluster, nothing readable by another local user."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pymysql
import pytest
from support.sandbox_lab import started_cluster

from labkit.home import labkit_home
from labkit.sandbox.engines.mariadb import socket_path
from labkit.sandbox.state import read_state, state_path

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


def _private_paths(home: Path) -> list[Path]:
    data = home / "data"
    paths = [data, data / "admin.secret", data / "repl.secret", state_path(home)]
    paths += [p for p in data.rglob("*") if not p.is_symlink()]  # template, every data directory and its files
    state = read_state()
    assert state is not None
    for name, server in state.instances.items():
        paths.append(socket_path(data / "instances" / name, server["server_id"]).parent)
    return paths


def test_data_directories_and_secret_files_have_no_group_or_other_bits(sandbox_backend, sandbox_home):
    started_cluster(sandbox_backend, "modes", readers=1)
    paths = _private_paths(sandbox_home)
    assert any(p.name == "binlog.000001" for p in paths) and any(
        p.name.startswith("template") and p.is_dir() for p in paths
    )
    leaky = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths if p.exists() and p.stat().st_mode & 0o077}
    assert leaky == {}


def _as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command],
        capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip


def test_another_local_user_cannot_read_the_secrets_or_the_data(sandbox_backend, sandbox_home):
    started_cluster(sandbox_backend, "other", readers=0)
    data = sandbox_home / "data"
    (instance,) = _servers("other")
    targets = {
        "cat": [data / "admin.secret", state_path(sandbox_home), data / "instances" / instance / "binlog.000001"],
        "ls": [data, data / "instances" / instance, data / "instances"],
    }
    if os.geteuid() != 0:
        # Not root (CI runs as root): no other user to become, so check the modes that keep one out instead.
        for paths in targets.values():
            for path in paths:
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        return
    # The home pytest made is 0700 whatever labkit does: open the way to it (traverse only, as a home in a
    # learner's 0755 directory would be), so only labkit's own modes can keep `nobody` out.
    opened = [p for p in [sandbox_home, *sandbox_home.parents] if p != Path("/")]
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in opened}
    try:
        for path in opened:
            path.chmod(modes[path] | 0o011)
        assert _as_nobody("ls", "/").returncode == 0, "setpriv works"
        for command, paths in targets.items():
            for path in paths:
                result = _as_nobody(command, str(path))
                assert result.returncode != 0, f"nobody could {command} {path}: {result.stdout[:200]!r}"
                assert "Permission denied" in result.stderr, result.stderr
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
