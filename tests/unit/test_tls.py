"""Encryption in transit without servers: the sandbox's CA and certificates, the drivers' verifying settings, AWS's
CA bundle fetched once (from a loopback HTTP server: tests never reach the internet), and the cluster parameter
group in plan, apply and destroy under the strict layer. The servers' side runs in tests/support/tls_checks.py."""

from __future__ import annotations

import socket
import ssl
import stat
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509

from labkit.aws import truststore
from labkit.config import LabConfig
from labkit.engines import AURORA_POSTGRESQL, ENGINES
from labkit.engines.aurora_mysql import AURORA_MYSQL
from labkit.engines.dialect import EndpointContext
from labkit.errors import LabkitError
from labkit.lab.apply import apply
from labkit.lab.destroy import destroy
from labkit.lab.plan import plan
from labkit.sandbox import tls

CLUSTER = "lab-ada-cluster.cluster-c0ffee123456.us-east-1.rds.amazonaws.com"
READER = "lab-ada-cluster.cluster-ro-c0ffee123456.us-east-1.rds.amazonaws.com"
INSTANCE = "lab-ada-db-1.aaaaaaaaaa.us-east-1.rds.amazonaws.com"


# ----- the sandbox's CA -----


def test_the_ca_is_made_once_per_home_private_and_signs_certificates_for_the_endpoints(tmp_path: Path):
    names = tls.endpoint_names(CLUSTER, READER, INSTANCE)
    assert names == (
        "*.aaaaaaaaaa.us-east-1.rds.amazonaws.com",
        "*.cluster-c0ffee123456.us-east-1.rds.amazonaws.com",
        "*.cluster-ro-c0ffee123456.us-east-1.rds.amazonaws.com",
    )
    made = tls.server_certificate(tmp_path, names)
    folder = tmp_path / tls.CA_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {"ca.pem": 0o600, "ca.key": 0o600}
    certificate = x509.load_pem_x509_certificate(made.certificate)
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(made.ca))
    assert made.ca == (folder / "ca.pem").read_bytes() == tls.ca_file(tmp_path).read_bytes()  # the same CA again
    other_home = tls.ca_file(tmp_path / "other")
    assert other_home.read_bytes() != made.ca, "each home has its own CA"
    # Python's own verification accepts each endpoint's name and refuses another cluster's
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    for name in (CLUSTER, READER, INSTANCE, "127.0.0.1"):
        assert _verifies(context, made, name), name
    assert not _verifies(context, made, CLUSTER.replace("c0ffee123456", "another12345"))


def test_a_servers_certificate_is_kept_while_its_names_stay_and_made_again_when_they_change(tmp_path: Path):
    names = tls.endpoint_names(CLUSTER, READER)
    first = tls.server_certificate(tmp_path, names)
    kept = tmp_path / "server.pem"
    kept.write_bytes(first.certificate)
    kept.with_suffix(".key").write_bytes(first.key)
    assert tls.server_certificate(tmp_path, names, previous=kept).certificate == first.certificate
    assert (
        tls.server_certificate(tmp_path, tls.endpoint_names(INSTANCE), previous=kept).certificate != first.certificate
    )
    # a certificate of another CA (the home's CA was made again) is replaced
    foreign = tls.server_certificate(tmp_path / "elsewhere", names)
    kept.write_bytes(foreign.certificate)
    assert tls.server_certificate(tmp_path, names, previous=kept).certificate != foreign.certificate


def test_two_processes_making_the_ca_at_once_end_with_one(tmp_path: Path):
    made: list[bytes] = []
    threads = [threading.Thread(target=lambda: made.append(tls.ca_file(tmp_path).read_bytes())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 1 and made[0] == (tmp_path / tls.CA_DIR / tls.CA_CERT).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [tls.CA_DIR], "no half-made CA folder left"


# ----- the drivers' settings -----


def test_each_engine_verifies_the_endpoints_name_wherever_the_socket_goes(tmp_path: Path):
    ca = str(tls.ca_file(tmp_path))
    libpq = AURORA_POSTGRESQL.dialect.dbapi.tls_arguments("127.0.0.1", ca, CLUSTER)
    assert libpq == {"host": CLUSTER, "hostaddr": "127.0.0.1", "sslmode": "verify-full", "sslrootcert": ca}
    assert AURORA_POSTGRESQL.dialect.dbapi.tls_arguments(CLUSTER, ca, CLUSTER)["host"] == CLUSTER  # no hostaddr
    context = AURORA_MYSQL.dialect.dbapi.tls_arguments("127.0.0.1", ca, CLUSTER)["ssl"]
    assert isinstance(context, EndpointContext) and context.server_name == CLUSTER
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert {engine.dialect.dbapi.to_dict()["tls"] for engine in ENGINES.values()} == {"sslcontext", "libpq"}


# ----- AWS's bundle, fetched once -----


class _Bundle(BaseHTTPRequestHandler):
    body = b""
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def bundle_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(truststore.BUNDLE_ENV, raising=False)
    _Bundle.body = tls.ca_file(tmp_path / "fake-rds").read_bytes()
    _Bundle.requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bundle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/global/global-bundle.pem"
    server.shutdown()
    server.server_close()


def test_the_rds_bundle_is_fetched_once_into_the_home_and_read_from_there(tmp_path: Path, bundle_server: str):
    home = tmp_path / "home"
    first = truststore.rds_ca_bundle(url=bundle_server, home=home)
    assert first == home / truststore.CACHE and first.read_bytes() == _Bundle.body
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert truststore.rds_ca_bundle(url=bundle_server, home=home) == first
    assert _Bundle.requests == 1, "the second call read the cached copy"


def test_a_bundle_that_is_not_certificates_or_cannot_be_fetched_is_refused_with_the_fix(
    tmp_path: Path, bundle_server: str, monkeypatch: pytest.MonkeyPatch
):
    _Bundle.body = b"<html>captive portal</html>"
    with pytest.raises(LabkitError, match="did not answer with a bundle of PEM certificates") as refused:
        truststore.rds_ca_bundle(url=bundle_server, home=tmp_path)
    assert truststore.BUNDLE_ENV in refused.value.fix and not (tmp_path / truststore.CACHE).exists()
    with pytest.raises(LabkitError, match="no RDS certificate bundle address for the aws-cn partition"):
        truststore.rds_ca_bundle("aws-cn", home=tmp_path)
    own = tls.ca_file(tmp_path / "own")
    monkeypatch.setenv(truststore.BUNDLE_ENV, str(own))
    assert truststore.rds_ca_bundle("aws-cn", home=tmp_path) == own
    monkeypatch.setenv(truststore.BUNDLE_ENV, str(tmp_path / "missing.pem"))
    with pytest.raises(LabkitError, match="is not a file of PEM certificates"):
        truststore.rds_ca_bundle(home=tmp_path)


# ----- the cluster parameter group -----


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_the_parameter_group_is_planned_made_before_the_cluster_and_deleted_after_it(strict_backend, engine):
    config = LabConfig(engine=engine)
    tls_facts = ENGINES[engine].tls
    catalog = strict_backend.strict.catalog  # the strict layer answers the catalog calls from the engine's catalog
    catalog.engine, catalog.versions = ENGINES[engine], dict(ENGINES[engine].catalog.versions)
    catalog.default, catalog.classes = ENGINES[engine].catalog.default, ENGINES[engine].instance_classes
    planned = {step.node: step for step in plan(config, strict_backend).steps}
    assert planned["cluster-parameters"].action == "create"
    assert "cluster-parameters" in planned["cluster"].depends_on
    apply(config, strict_backend, only="database")
    rds = strict_backend.client("rds")
    group = f"{config.lab}-{config.learner}-cluster-parameters"
    cluster = rds.describe_db_clusters()["DBClusters"][0]
    assert cluster["DBClusterParameterGroup"] == group
    parameters = rds.describe_db_cluster_parameters(DBClusterParameterGroupName=group)["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in parameters} == {tls_facts.parameter: tls_facts.required}
    family = rds.describe_db_cluster_parameter_groups()["DBClusterParameterGroups"][0]["DBParameterGroupFamily"]
    assert family == ENGINES[engine].catalog.family_of(cluster["EngineVersion"])[0]
    # a learner who turned the requirement off gets it back from a rerun, which the plan shows first
    rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=group, Parameters=[{"ParameterName": tls_facts.parameter, "ParameterValue": "0"}]
    )
    again = {step.node: step for step in plan(config, strict_backend).steps}
    assert again["cluster-parameters"].action != "create" and tls_facts.parameter in str(again["cluster-parameters"])
    assert destroy(config, strict_backend).empty
    assert strict_backend.strict.refusals == [], "the group went after the cluster, never while it was in use"
    assert rds.describe_db_cluster_parameter_groups()["DBClusterParameterGroups"] == []


def test_the_strict_layer_refuses_deleting_a_group_in_use(strict_backend):
    apply(LabConfig(), strict_backend, only="database")
    rds = strict_backend.client("rds")
    group = rds.describe_db_clusters()["DBClusters"][0]["DBClusterParameterGroup"]
    with pytest.raises(Exception, match="InvalidDBParameterGroupState"):
        rds.delete_db_cluster_parameter_group(DBClusterParameterGroupName=group)


def _verifies(context: ssl.SSLContext, made: tls.ServerCertificate, name: str) -> bool:
    """Whether a client with `context` accepts `made` for `name` (a real handshake over a socket pair)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as where:
        cert, key = Path(where) / "c.pem", Path(where) / "c.key"
        cert.write_bytes(made.certificate)
        key.write_bytes(made.key)
        server_context.load_cert_chain(cert, key)
    left, right = socket.socketpair()
    outcome: dict[str, bool] = {}

    def serve() -> None:
        try:
            with server_context.wrap_socket(right, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with context.wrap_socket(left, server_hostname=name):
            outcome["ok"] = True
    except ssl.SSLCertVerificationError:
        outcome["ok"] = False
    finally:
        thread.join()
    return outcome["ok"]
