"""The sandbox's data-plane interface without a database: the engine registry, and the reconciler driving any
engine through the interface alone (a recording fake stands in for real servers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from labkit.errors import LabkitError, SandboxError
from labkit.sandbox.daemon.reconciler import ClusterView, Reconciler
from labkit.sandbox.engines import base
from labkit.sandbox.engines.base import DatabaseEngine, DatabaseServer, engine_class, register
from labkit.sandbox.engines.mariadb import MariaDBEngine

# ----- the registry -----


@pytest.mark.parametrize("rds_engine", ["aurora-mysql", "aurora", "mysql", "mariadb"])
def test_aurora_mysql_and_its_kin_run_on_mariadb(rds_engine):
    assert engine_class(rds_engine) is MariaDBEngine


@pytest.mark.parametrize("rds_engine", ["aurora-postgresql", "neptune", ""])
def test_an_engine_the_sandbox_does_not_run_is_refused_with_the_ones_it_does(rds_engine):
    with pytest.raises(SandboxError) as refused:
        engine_class(rds_engine)
    assert isinstance(refused.value, LabkitError)
    assert refused.value.field == "Engine"
    assert repr(rds_engine) in refused.value.message
    assert "aurora-mysql" in refused.value.fix


def test_the_mariadb_engine_declares_what_clients_rely_on():
    assert MariaDBEngine.default_port == 3306
    assert "report_host" in MariaDBEngine.identity_sql  # each server starts with --report-host=<instance id>


def test_a_server_needs_the_engine_prepared_first():
    engine = MariaDBEngine()
    engine._binaries = object()  # no mariadbd needed: it must refuse before using them
    with pytest.raises(SandboxError) as refused:
        engine.server("db-1", Path("/nonexistent"), 1, 1, "pw", "repl-pw")
    assert "prepare" in refused.value.fix


# ----- the reconciler, through the interface only -----


class FakeServer(DatabaseServer):
    """Records what the reconciler asks of it; roles and replication as a real server would report them."""

    def __init__(self, name: str, port: int, server_id: int, calls: list[tuple[Any, ...]]) -> None:
        self.name, self.port, self.server_id, self.datadir = name, port, server_id, Path("/nonexistent")
        self.calls = calls
        self.source: int | None = None
        self.running = False

    @property
    def pid(self) -> int | None:
        return 4242 if self.running else None

    def start(self) -> None:
        self.running = True
        self.calls.append(("start", self.name))

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.calls.append(("ready", self.name))

    def bootstrap_writer(self, master_user: str, master_password: str, database: str | None, repl: str) -> None:
        self.calls.append(("bootstrap", self.name, master_user, master_password, database))

    def replicate_from(self, writer_port: int, repl_password: str) -> None:
        self.source = writer_port
        self.calls.append(("replicate", self.name, writer_port))

    def replication_source_port(self) -> int | None:
        return self.source

    def fence(self) -> str:
        self.calls.append(("fence", self.name))
        return f"position-of-{self.name}"

    def promote(self, catch_up_to: str | None, timeout: float = 10.0) -> None:
        self.source = None
        self.calls.append(("promote", self.name, catch_up_to))

    def stop(self, timeout: float = 10.0) -> None:
        self.running = False

    def remove(self) -> None:
        self.running = False
        self.calls.append(("remove", self.name))


class FakeEngine(DatabaseEngine):
    rds_engines = ("aurora-fake",)
    default_port = 6543
    identity_sql = "SELECT name"
    calls: ClassVar[list[tuple[Any, ...]]] = []

    def check_installed(self) -> None:
        pass

    def prepare(self, data_root: Path, admin_password: str, repl_password: str) -> None:
        self.calls.append(("prepare", str(data_root)))

    def server(
        self, name: str, datadir: Path, port: int, server_id: int, admin_password: str, repl_password: str
    ) -> DatabaseServer:
        assert repl_password and repl_password != admin_password, "the replication user has its own password"
        return FakeServer(name, port, server_id, self.calls)


class FakeRds:
    """describe_db_clusters / describe_db_instances pages, as boto3's paginators return them."""

    def __init__(self) -> None:
        self.clusters: list[dict[str, Any]] = []
        self.instances: list[dict[str, Any]] = []

    def cluster(self, name: str, engine: str, members: list[str], writer: str) -> None:
        self.clusters.append({
            "DBClusterIdentifier": name, "Engine": engine, "Endpoint": f"{name}.cluster-x",
            "ReaderEndpoint": f"{name}.cluster-ro-x", "MasterUsername": "admin", "DatabaseName": "shop",
            "DBClusterMembers": [{"DBInstanceIdentifier": m, "IsClusterWriter": m == writer} for m in members],
        })  # fmt: skip
        self.instances += [
            {"DBInstanceIdentifier": m, "DBClusterIdentifier": name, "Endpoint": {"Address": f"{m}.x"}} for m in members
        ]

    def fail_over(self, name: str, writer: str) -> None:
        cluster = next(c for c in self.clusters if c["DBClusterIdentifier"] == name)
        for member in cluster["DBClusterMembers"]:
            member["IsClusterWriter"] = member["DBInstanceIdentifier"] == writer

    def get_paginator(self, operation: str) -> Any:
        key, items = (
            ("DBClusters", self.clusters) if operation == "describe_db_clusters" else ("DBInstances", self.instances)
        )

        class Pages:
            def paginate(self) -> list[dict[str, Any]]:
                return [{key: items}]

        return Pages()


@pytest.fixture
def fake_engine(monkeypatch):
    monkeypatch.setattr(base, "_registry", dict(base._registry))  # the registration ends with the test
    monkeypatch.setattr(FakeEngine, "calls", [])
    register(FakeEngine)
    return FakeEngine


def _reconciler(tmp_path: Path, rds: FakeRds) -> Reconciler:
    def master_password(client: Any, cluster: ClusterView) -> str:
        return f"password-of-{cluster.identifier}"

    return Reconciler(tmp_path / "data", "admin-secret", lambda: [rds], master_password)


def test_the_cluster_engine_picks_the_data_plane_and_the_reconciler_uses_only_the_interface(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("shop", "aurora-fake", ["shop-writer", "shop-reader"], writer="shop-writer")
    reconciler = _reconciler(tmp_path, rds)
    assert reconciler.reconcile() is True
    calls = fake_engine.calls
    assert calls[0] == ("prepare", str(tmp_path / "data"))
    assert {c for c in calls if c[0] in ("start", "ready")} == {
        ("start", "shop-writer"), ("start", "shop-reader"), ("ready", "shop-writer"), ("ready", "shop-reader"),
    }  # fmt: skip
    assert ("bootstrap", "shop-writer", "admin", "password-of-shop", "shop") in calls
    writer_port = reconciler.servers["shop-writer"].port
    assert ("replicate", "shop-reader", writer_port) in calls
    instances, clusters = reconciler.snapshot()
    assert clusters["shop"]["port"] == FakeEngine.default_port  # no Port described: the engine's default
    assert clusters["shop"]["writer"] == "shop-writer" and clusters["shop"]["readers"] == ["shop-reader"]
    assert {i["status"] for i in instances.values()} == {"available"}
    assert reconciler.reconcile() is False, "a second pass changes nothing"


def test_a_failover_fences_the_old_writer_and_promotes_the_new_one_through_the_interface(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("swap", "aurora-fake", ["swap-a", "swap-b"], writer="swap-a")
    reconciler = _reconciler(tmp_path, rds)
    reconciler.reconcile()
    fake_engine.calls.clear()
    rds.fail_over("swap", "swap-b")
    assert reconciler.reconcile() is True
    new_port = reconciler.servers["swap-b"].port
    assert fake_engine.calls == [
        ("fence", "swap-a"),
        ("promote", "swap-b", "position-of-swap-a"),
        ("replicate", "swap-a", new_port),
    ]
    assert reconciler.snapshot()[1]["swap"]["writer"] == "swap-b"


def test_a_cluster_of_an_engine_the_sandbox_lacks_gets_no_servers_and_stalls_no_other(tmp_path, fake_engine, caplog):
    rds = FakeRds()
    rds.cluster("pg", "aurora-postgresql", ["pg-writer"], writer="pg-writer")
    rds.cluster("ok", "aurora-fake", ["ok-writer"], writer="ok-writer")
    reconciler = _reconciler(tmp_path, rds)
    reconciler.reconcile()
    reconciler.reconcile()
    assert set(reconciler.servers) == {"ok-writer"}
    assert set(reconciler.snapshot()[1]) == {"ok"}
    warnings = [r.getMessage() for r in caplog.records if "pg" in r.getMessage()]
    assert len(warnings) == 1 and "aurora-postgresql" in warnings[0], "logged once, with the engine"


def test_deleting_an_instance_removes_its_server(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("shrink", "aurora-fake", ["shrink-w", "shrink-r"], writer="shrink-w")
    reconciler = _reconciler(tmp_path, rds)
    reconciler.reconcile()
    rds.instances = [i for i in rds.instances if i["DBInstanceIdentifier"] != "shrink-r"]
    rds.clusters[0]["DBClusterMembers"] = rds.clusters[0]["DBClusterMembers"][:1]
    assert reconciler.reconcile() is True
    assert ("remove", "shrink-r") in fake_engine.calls and set(reconciler.servers) == {"shrink-w"}
