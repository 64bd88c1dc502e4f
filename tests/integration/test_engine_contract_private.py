"""The engine contract, part 3 (see test_engine_contract.py): the sandbox's promise "Private" for every engine. No
account logs in without its password (no passwordless account, no trust rule), the managed secret's rotation is
applied on every server, no password is in anything a server logs, and every file of the data is for its owner
only: another local user can read neither the data nor the secrets.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from support.clusters import ENGINE_NAMES, connect, create_cluster, error_kind
from support.contract import LOGS, SUSPECTS, endpoint_connection, until
from support.sandbox_lab import aurora_cluster

from labkit.engines import ACCESS_DENIED
from labkit.sandbox.state import read_state, state_path

pytestmark = pytest.mark.parametrize("engine", ENGINE_NAMES)


def _hidden_passwords(home: Path) -> dict[str, str]:
    return {name: (home / "data" / name).read_text().strip() for name in ("admin.secret", "repl.secret")}


def test_no_login_without_the_password_and_the_rotated_one_on_every_server_and_in_no_log(
    sandbox_backend, sandbox_home, engine
):
    cluster, old = aurora_cluster(sandbox_backend, "nopass", engine=engine)
    for name, server in read_state().instances.items():
        for user in SUSPECTS[engine]:
            for password in ("", "not-its-password"):
                with pytest.raises(Exception) as refused:
                    connect(engine, "127.0.0.1", server["port"], password, user=user, database="").close()
                if password:  # an empty one is refused before the server could say why: no password to send
                    assert error_kind(engine, refused.value) == ACCESS_DENIED, f"{user!r}@{name}: {refused.value}"

    arn = cluster["MasterUserSecret"]["SecretArn"]
    secrets = sandbox_backend.client("secretsmanager")
    secrets.rotate_secret(SecretId=arn)  # as RDS does every 7 days: on the database first, then in the secret
    value = secrets.get_secret_value(SecretId=arn)
    new = json.loads(value["SecretString"])["password"]
    assert new != old and "AWSCURRENT" in value["VersionStages"]
    for endpoint in (cluster["Endpoint"], cluster["ReaderEndpoint"]):
        until(lambda endpoint=endpoint: endpoint_connection(engine, endpoint, new).close() or True, endpoint)
        with pytest.raises(Exception) as refused:
            endpoint_connection(engine, endpoint, old).close()
        assert error_kind(engine, refused.value) == ACCESS_DENIED, refused.value

    passwords = {**_hidden_passwords(sandbox_home), "master": old, "rotated master": new}
    assert len(set(passwords.values())) == 4, "each account has its own generated password"
    data = sandbox_home / "data"
    logs = [path for pattern in LOGS[engine] for path in data.rglob(pattern) if path.is_file()]
    assert logs, f"no {engine} logs found"
    for path in logs:
        text = path.read_bytes()
        for secret, password in passwords.items():
            assert password.encode() not in text, f"the {secret} password is in {path}"


def _as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command],
        capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip


def test_every_file_of_the_data_is_for_its_owner_only(sandbox_backend, sandbox_home, engine):
    aurora_cluster(sandbox_backend, "modes", engine=engine)
    data = sandbox_home / "data"
    paths = [data, state_path(sandbox_home), *(p for p in data.rglob("*") if not p.is_symlink())]
    assert any("modes-b" in p.parts for p in paths)
    leaky = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths if p.exists() and p.stat().st_mode & 0o077}
    assert leaky == {}
    if os.geteuid() != 0:
        return  # not root: no other user to become; the modes above are what keeps one out
    # The home pytest made is 0700 whatever labkit does: open the way to it (traverse only, as a home in a 0755
    # folder would be), so only labkit's own modes keep `nobody` out of the data and the secrets.
    opened = [p for p in [sandbox_home, *sandbox_home.parents] if p != Path("/")]
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in opened}
    try:
        for path in opened:
            path.chmod(modes[path] | 0o011)
        assert _as_nobody("ls", "/").returncode == 0, "setpriv works"
        for command, path in [("ls", data), ("ls", data / "instances" / "modes-a"), ("cat", data / "admin.secret")]:
            result = _as_nobody(command, str(path))
            assert result.returncode != 0 and "Permission denied" in result.stderr, f"nobody could {command} {path}"
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_the_managed_secret_holds_the_clusters_own_password_as_soon_as_create_answers(sandbox_backend, engine):
    """Read before any DB instance exists (as an app started early does), the secret already holds the password
    the writer will be bootstrapped with: one generated for that cluster, not moto's value shared by all."""
    rds, secrets = sandbox_backend.client("rds"), sandbox_backend.client("secretsmanager")
    passwords = []
    for name in ("early-a", "early-b"):
        cluster, _ = create_cluster(rds, f"{name}-{engine[7:9]}", (), engine=engine)  # no instance: no bootstrap
        arn = cluster["MasterUserSecret"]["SecretArn"]
        assert len(secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]) == 2, "moto's, then the cluster's"
        passwords.append(json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])["password"])
    assert passwords[0] != passwords[1] and all(len(p) >= 20 for p in passwords), "each cluster its own"
