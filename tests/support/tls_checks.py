"""Encryption in transit, checked on a real sandbox lab of either engine: the integration modules that already have
a lab (test_tunnel_sandbox for Aurora MySQL, test_postgresql_client for Aurora PostgreSQL) call these, so the checks
cost no lab of their own."""

from __future__ import annotations

import stat
import time
from functools import partial
from typing import Any

import pytest

import labkit
from labkit.access.lookup import cluster_engine, lab_cluster
from labkit.access.sql import credentials
from labkit.access.tls import certificate_refused, tunnel_verification
from labkit.access.tunnel import Tunnel
from labkit.bench.connect import c_path
from labkit.errors import LabkitError
from labkit.home import labkit_home
from labkit.lab.resources.database import DATABASE_NAME
from labkit.sandbox import tls as sandbox_tls
from labkit.sandbox.state import read_state

WRONG_NAME = "someone-else.cluster-abcdefghijkl.us-east-1.rds.amazonaws.com"


def labkit_sessions_are_encrypted(config: Any, backend: Any) -> None:
    """labkit's own sessions on the writer and the reader: the server reports a TLS version and a cipher."""
    for on in ("writer", "reader"):
        row = labkit.encryption(on, config=config, backend=backend).iloc[0]
        assert str(row["tls_version"]).startswith("TLSv1."), row.to_dict()
        assert row["cipher"] and "none" not in str(row["cipher"]), row.to_dict()


def plaintext_is_refused_as_the_group_says(config: Any, backend: Any) -> None:
    """The cluster names the lab's parameter group, which requires TLS: a client without TLS is refused in the
    server's own words. Turned off in the group, the same client gets in; on again, refused again."""
    engine = cluster_engine(config, backend)
    rds = backend.client("rds")
    group = lab_cluster(config, backend)["DBClusterParameterGroup"]
    assert group == f"{config.lab}-{config.learner}-cluster-parameters"
    refused = labkit.plaintext_refused("writer", config=config, backend=backend).iloc[0]
    assert refused["refused"], refused.to_dict()
    assert any(words in refused["server says"] for words in engine.tls.refusals)
    try:
        _set(rds, group, engine.tls.parameter, "0" if engine.tls.required == "1" else "OFF")
        _until(lambda: not labkit.plaintext_refused("reader", config=config, backend=backend).iloc[0]["refused"])
    finally:
        _set(rds, group, engine.tls.parameter, engine.tls.required)
    _until(lambda: labkit.plaintext_refused("reader", config=config, backend=backend).iloc[0]["refused"])


def another_name_or_another_ca_is_refused(config: Any, backend: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """Verifying another endpoint's name, or trusting another home's CA, fails before any password is sent: on the
    driver's path, on the C path, and through labkit.sql as a LabkitError that names the fix."""
    engine = cluster_engine(config, backend)
    secret = credentials(config, backend)
    tunnel = Tunnel("writer", config=config, backend=backend).open()
    try:
        ca_file, name = tunnel_verification(tunnel)
        other_ca = str(sandbox_tls.ca_file(tmp_path / "another-home"))
        for wrong in ((ca_file, WRONG_NAME), (other_ca, name)):
            with pytest.raises(engine.dialect.dbapi.errors()) as failed:
                engine.dialect.dbapi.connect(
                    tunnel.host, tunnel.port, secret.username, secret.password, DATABASE_NAME, connect_timeout=5,
                    timeout=5, tls=wrong,
                )  # fmt: skip
            assert certificate_refused(str(failed.value)), failed.value
            c_connect = partial(
                c_path(engine).connect, tunnel.host, tunnel.port, secret.username, secret.password, DATABASE_NAME, 5
            )
            if wrong[1] == WRONG_NAME and engine.name == "aurora-mysql":
                c_connect(tls=wrong).close()  # libmysqlclient checks the chain only (labkit.bench.capi says why)
                continue
            with pytest.raises(c_path(engine).Error) as failed_c:
                c_connect(tls=wrong)
            assert certificate_refused(str(failed_c.value)), failed_c.value
        # the right name and CA connect
        engine.dialect.dbapi.connect(
            tunnel.host, tunnel.port, secret.username, secret.password, DATABASE_NAME, connect_timeout=5, timeout=5,
            tls=(ca_file, name),
        ).close()  # fmt: skip
    finally:
        tunnel.close()
    labkit.close_engines()
    monkeypatch.setattr("labkit.access.sql.verification", lambda backend, name: (backend.trust_store(), WRONG_NAME))
    with pytest.raises(LabkitError) as refused:
        labkit.sql("SELECT 1", config=config, backend=backend)
    assert refused.value.field == "tls" and "before any password" in refused.value.message, refused.value
    labkit.close_engines()


def the_ca_is_the_homes_and_private(config: Any, backend: Any) -> None:
    """One CA per home, its key 0600 in a 0700 folder; each server's key 0600; its certificate names the
    cluster's endpoints in RDS's wildcard shape."""
    folder = labkit_home() / "data" / sandbox_tls.CA_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (sandbox_tls.CA_KEY, sandbox_tls.CA_CERT):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert backend.trust_store() == str(folder / sandbox_tls.CA_CERT)
    cluster = lab_cluster(config, backend)
    writer = next(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"])
    datadir = labkit_home() / "data" / "instances" / writer
    keys = list(datadir.rglob("labkit-server.key"))
    assert keys and all(stat.S_IMODE(key.stat().st_mode) == 0o600 for key in keys)
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(keys[0].with_suffix(".pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    wildcard = "*." + cluster["Endpoint"].split(".", 1)[1]
    assert wildcard in names.get_values_for_type(x509.DNSName)
    assert read_state().instances[writer]["port"]


def _set(rds: Any, group: str, parameter: str, value: str) -> None:
    rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=group,
        Parameters=[{"ParameterName": parameter, "ParameterValue": value, "ApplyMethod": "immediate"}],
    )


def _until(condition: Any, timeout: float = 30.0) -> None:
    """Wait for the reconciler's next pass to apply the group (a state to reach, polled; never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the servers did not follow the parameter group"
        time.sleep(0.2)
