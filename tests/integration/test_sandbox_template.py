"""The MariaDB template every new server starts from is the user's, shared by their homes and made once: a new home
does not pay for mariadb-install-db. It holds no secret; each server makes the hidden accounts with its own home's
passwords as it starts, outside the binlog (test_sandbox_privacy.py checks the binlog)."""

from __future__ import annotations

import pymysql
import pytest
from support.sandbox_lab import started_cluster

from labkit import sandbox
from labkit.home import private_dir
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.engines.mariadb import ADMIN_USER, INIT_FILE, native_hash
from labkit.sandbox.state import read_state
from labkit.sandbox.templates import READY


def _admin_login(port: int, password: str) -> None:
    pymysql.connect(host="127.0.0.1", port=port, user=ADMIN_USER, password=password, connect_timeout=2).close()


def test_a_new_home_starts_from_the_users_template_with_its_own_passwords(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    homes = {name: tmp_path / name for name in ("first", "second")}
    old_template = private_dir(homes["second"] / "data" / "template-v2")  # a home made before: held its passwords
    ports: dict[str, int] = {}
    try:
        for name, home in homes.items():
            monkeypatch.setenv("LABKIT_HOME", str(home))
            sandbox.up(quiet=True)
            started_cluster(SandboxBackend(), f"{name}-db", readers=0)
            state = read_state(home)
            assert state is not None
            ports[name] = state.instances[f"{name}-db-writer"]["port"]
            if name == "first":
                [template] = (cache / "labkit").glob("mariadb-*")
                made = (template / READY).stat()
        assert [p.name for p in (cache / "labkit").glob("mariadb-*")] == [template.name], "a second template was made"
        assert (template / READY).stat().st_ino == made.st_ino, "the second home rebuilt the template"
        assert not (homes["second"] / "data" / "template.log").exists(), "the second home ran mariadb-install-db"
        assert not old_template.exists(), "the old per-home template (it held the home's passwords) was kept"

        admin = {name: (home / "data" / "admin.secret").read_text().strip() for name, home in homes.items()}
        repl = {name: (home / "data" / "repl.secret").read_text().strip() for name, home in homes.items()}
        for name, other in (("first", "second"), ("second", "first")):
            _admin_login(ports[name], admin[name])  # each server takes its own home's password ...
            with pytest.raises(pymysql.err.OperationalError) as refused:  # ... and not the other home's
                _admin_login(ports[name], admin[other])
            assert refused.value.args[0] == 1045
            datadir = homes[name] / "data" / "instances" / f"{name}-db-writer"
            assert not (datadir / INIT_FILE).exists(), "the start's account file was left in the data directory"

        secrets = [*admin.values(), *repl.values()]
        needles = [ADMIN_USER.encode(), *(s.encode() for s in secrets), *(native_hash(s).encode() for s in secrets)]
        for path in [p for p in template.rglob("*") if p.is_file()]:
            data = path.read_bytes()
            assert not [n for n in needles if n in data], f"{path} holds an account or a password"
    finally:
        for home in homes.values():
            monkeypatch.setenv("LABKIT_HOME", str(home))
            sandbox.down(quiet=True)
