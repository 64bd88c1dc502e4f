"""The sandbox's data-plane interface without a database: the engine registry, and the reconciler driving any
engine through the interface alone (a recording fake stands in for real servers)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from labkit.errors import LabkitError, SandboxError
from labkit.sandbox.daemon.reconciler import ClusterView, Reconciler
from labkit.sandbox.engines import base
from labkit.sandbox.engines.base import DatabaseEngine, DatabaseServer, engine_class, register
from labkit.sandbox.engines.mariadb import MariaDBEngine, _forget_socket, socket_path
from labkit.sandbox.engines.postgresql import PostgreSQLEngine

# ----- the registry -----


@pytest.mark.parametrize("rds_engine", ["aurora-mysql", "aurora", "mysql", "mariadb"])
def test_aurora_mysql_and_its_kin_run_on_mariadb(rds_engine):
    assert engine_class(rds_engine) is MariaDBEngine


@pytest.mark.parametrize("rds_engine", ["aurora-postgresql", "postgres", "postgresql"])
def test_aurora_postgresql_and_its_kin_run_on_postgresql(rds_engine):
    assert engine_class(rds_engine) is PostgreSQLEngine


@pytest.mark.parametrize("rds_engine", ["docdb", "neptune", ""])
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

    def __init__(self, name: str, port: int, server_id: int, calls: list[tuple[Any, ...]], datadir: Path) -> None:
        self.name, self.port, self.server_id, self.datadir = name, port, server_id, datadir
        self.calls = calls
        self.source: int | None = None
        self.running = False
        self.dead = False  # set by a test: the process was killed
        self.broken = False  # set by a test: its replication stopped with an error it cannot get past
        self.behind = False  # set by a test: it cannot apply what it is asked to hold

    @property
    def pid(self) -> int | None:
        return 4242 if self.running else None

    def require_secure_transport(self, required: bool) -> None:
        self.calls.append(("require_secure_transport", self.name, required))
        self.secure_transport = required

    def exited(self) -> bool:
        return self.dead

    def caught_up_position(self) -> str | None:
        return f"received-by-{self.name}"

    def replication_state(self) -> str:
        if self.broken:
            return base.BROKEN
        return base.REPLICATING if self.source is not None else base.STOPPED

    def position(self) -> str:
        return f"position-of-{self.name}"

    def holds(self, position: str) -> bool:
        return not self.behind and not self.broken

    def require_replica_ack(self, required: bool) -> None:
        self.calls.append(("acks", self.name, required))

    def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.running, self.dead = True, False
        self.calls.append(("start", self.name))

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.calls.append(("ready", self.name))

    def bootstrap_writer(self, master_user: str, master_password: str, database: str | None, repl: str) -> None:
        self.calls.append(("bootstrap", self.name, master_user, master_password, database))

    def set_password(self, user: str, password: str) -> None:
        self.calls.append(("set_password", self.name, user))

    def replicate_from(self, writer_port: int, repl_password: str) -> None:
        self.source = writer_port
        self.calls.append(("replicate", self.name, writer_port))

    def replication_source_port(self) -> int | None:
        return self.source

    def fence(self) -> str:
        self.calls.append(("fence", self.name))
        return f"position-of-{self.name}"

    def promote(self, catch_up_to: str | None, timeout: float = 10.0) -> None:
        if catch_up_to and not self.holds(catch_up_to):
            self.calls.append(("promote refused", self.name, catch_up_to))
            raise SandboxError(f"{self.name} did not apply {catch_up_to}", field=self.name, fix="none")
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
        return FakeServer(name, port, server_id, self.calls, datadir)


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


def test_a_reader_created_while_its_writer_starts_starts_in_the_same_pass(tmp_path, fake_engine, monkeypatch):
    """A learner creates the writer and the reader a moment apart; the pass that starts the writer's server starts
    the reader's too, instead of a whole server start and bootstrap later."""
    rds = FakeRds()
    rds.cluster("pair", "aurora-fake", ["pair-writer"], writer="pair-writer")
    start = FakeServer.start

    def start_and_create_the_reader(server: FakeServer) -> None:
        start(server)
        if server.name == "pair-writer":  # CreateDBInstance of the reader, answered while the writer starts
            rds.clusters[0]["DBClusterMembers"].append(
                {"DBInstanceIdentifier": "pair-reader", "IsClusterWriter": False}
            )
            rds.instances.append({"DBInstanceIdentifier": "pair-reader", "DBClusterIdentifier": "pair"})

    monkeypatch.setattr(FakeServer, "start", start_and_create_the_reader)
    reconciler = _reconciler(tmp_path, rds)
    assert reconciler.reconcile() is True
    assert [c for c in fake_engine.calls if c[0] == "start"] == [("start", "pair-writer"), ("start", "pair-reader")]
    assert ("replicate", "pair-reader", reconciler.servers["pair-writer"].port) in fake_engine.calls


def test_the_data_plane_is_settled_only_once_every_new_instance_is_available(tmp_path, fake_engine):
    """The daemon's background work (a new home's trimmed models) waits for this, not to slow a first query."""
    rds = FakeRds()
    reconciler = _reconciler(tmp_path, rds)
    assert reconciler.settled()  # nothing to start
    rds.cluster("calm", "aurora-fake", ["calm-w", "calm-r"], writer="calm-w")
    for described in rds.instances:
        described["DBInstanceStatus"] = "creating"
    reconciler.reconcile()
    assert not reconciler.settled(), "settled while its instances are still creating"
    reconciler.publish_states()
    assert reconciler.settled()


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
        ("acks", "swap-b", True),  # once swap-a holds what swap-b had: a commit waits for its copy
    ]
    assert reconciler.snapshot()[1]["swap"]["writer"] == "swap-b"


def _reader_behind(tmp_path: Path, name: str) -> tuple[FakeRds, FakeModel, Reconciler]:
    """A healthy cluster `name` of `name`-a (the writer) and `name`-b, a reader that cannot catch up."""
    rds = FakeRds()
    rds.cluster(name, "aurora-fake", [f"{name}-a", f"{name}-b"], writer=f"{name}-a")
    model = FakeModel(rds)
    reconciler = _healthy(tmp_path, rds, model)
    reconciler.servers[f"{name}-b"].behind = True
    FakeEngine.calls.clear()
    return rds, model, reconciler


def test_a_failover_to_a_reader_that_cannot_catch_up_leaves_the_writer_in_place(tmp_path, fake_engine):
    rds, model, reconciler = _reader_behind(tmp_path, "stay")
    rds.fail_over("stay", "stay-b")  # FailoverDBCluster
    _pass(reconciler)
    assert fake_engine.calls[:3] == [
        ("fence", "stay-a"),
        ("promote refused", "stay-b", "position-of-stay-a"),
        ("promote", "stay-a", None),  # takes writes again: nothing it committed is missing from the writer
    ]
    assert reconciler.snapshot()[1]["stay"]["writer"] == "stay-a"
    assert [m["IsClusterWriter"] for m in rds.clusters[0]["DBClusterMembers"]] == [True, False]
    assert model.events[-2:] == [
        "Started cross AZ failover to DB instance: stay-b", "Failover to DB instance stay-b failed"
    ]  # fmt: skip


def test_failover_db_cluster_leaves_rds_events_as_aurora_does(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("told", "aurora-fake", ["told-a", "told-b"], writer="told-a")
    model = FakeModel(rds)
    reconciler = _healthy(tmp_path, rds, model)
    rds.fail_over("told", "told-b")  # FailoverDBCluster
    _pass(reconciler)
    assert model.events[-2:] == [
        "Started cross AZ failover to DB instance: told-b", "Completed failover to DB instance: told-b"
    ]  # fmt: skip


def test_a_cluster_of_an_engine_the_sandbox_lacks_gets_no_servers_and_stalls_no_other(tmp_path, fake_engine, caplog):
    rds = FakeRds()
    rds.cluster("pg", "docdb", ["pg-writer"], writer="pg-writer")
    rds.cluster("ok", "aurora-fake", ["ok-writer"], writer="ok-writer")
    reconciler = _reconciler(tmp_path, rds)
    reconciler.reconcile()
    reconciler.reconcile()
    assert set(reconciler.servers) == {"ok-writer"}
    assert set(reconciler.snapshot()[1]) == {"ok"}
    warnings = [r.getMessage() for r in caplog.records if "pg" in r.getMessage()]
    assert len(warnings) == 1 and "docdb" in warnings[0], "logged once, with the engine"


class UninstalledEngine(FakeEngine):
    rds_engines = ("aurora-missing",)

    def prepare(self, data_root: Path, admin_password: str, repl_password: str) -> None:
        raise SandboxError("server not found", field="postgres", fix="install it")


def test_an_instance_whose_engine_is_not_installed_fails_with_the_fix_and_stalls_no_other(
    tmp_path, fake_engine, caplog
):
    register(UninstalledEngine)
    rds = FakeRds()
    rds.cluster("gone", "aurora-missing", ["gone-writer"], writer="gone-writer")
    rds.cluster("ok", "aurora-fake", ["ok-writer"], writer="ok-writer")
    model = FakeModel(rds)
    reconciler = _healthy(tmp_path, rds, model)
    _pass(reconciler)
    assert set(reconciler.servers) == {"ok-writer"}
    assert model.statuses["gone-writer"][-1] == "failed" and model.statuses["ok-writer"][-1] == "available"
    assert reconciler.errors["gone-writer"] == "server not found; fix: install it"
    assert sum("install it" in r.getMessage() for r in caplog.records) == 1, "logged once"


def test_deleting_an_instance_removes_its_server(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("shrink", "aurora-fake", ["shrink-w", "shrink-r"], writer="shrink-w")
    reconciler = _reconciler(tmp_path, rds)
    reconciler.reconcile()
    rds.instances = [i for i in rds.instances if i["DBInstanceIdentifier"] != "shrink-r"]
    rds.clusters[0]["DBClusterMembers"] = rds.clusters[0]["DBClusterMembers"][:1]
    assert reconciler.reconcile() is True
    assert ("remove", "shrink-r") in fake_engine.calls and set(reconciler.servers) == {"shrink-w"}


# ----- health like Aurora's, and what survives a restart -----


class FakeModel:
    """Records what the reconciler writes back into the control plane (daemon/rdsmodel.py in the daemon)."""

    def __init__(self, rds: FakeRds) -> None:
        self.rds = rds
        self.statuses: dict[str, list[str]] = {}
        self.events: list[str] = []
        self.reboots: dict[str, bool] = {}  # instance -> ForceFailover, as RebootDBInstance leaves them

    def set_status(self, region: str, instance: str, status: str) -> bool:
        seen = self.statuses.setdefault(instance, [])
        if not seen or seen[-1] != status:  # as moto's model: a state, not a log of calls
            seen.append(status)
        for described in self.rds.instances:
            if described["DBInstanceIdentifier"] == instance:
                described["DBInstanceStatus"] = status
        return True

    def take_reboot(self, region: str, instance: str) -> bool | None:
        return self.reboots.pop(instance, None)

    def fail_over(self, region: str, cluster: str, target: str) -> None:
        self.rds.fail_over(cluster, target)

    def add_event(self, region: str, source_type: str, source: str, message: str, categories: list[str]) -> None:
        self.events.append(message)


def _healthy(tmp_path: Path, rds: FakeRds, model: FakeModel) -> Reconciler:
    reconciler = Reconciler(
        tmp_path / "data", "admin-secret", lambda: [rds], lambda client, c: f"pw-{c.identifier}", model=model
    )
    _pass(reconciler)
    return reconciler


def _pass(reconciler: Reconciler) -> None:
    """One pass of the daemon's loop: converge, (write the state file), publish the instance states."""
    reconciler.reconcile()
    reconciler.publish_states()


def test_new_instances_are_creating_until_their_server_answers_in_its_role(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("grow", "aurora-fake", ["grow-w", "grow-r"], writer="grow-w")
    for described in rds.instances:
        described["DBInstanceStatus"] = "creating"  # as CreateDBInstance answers (rdsmodel.InstanceStates)
    model = FakeModel(rds)
    _healthy(tmp_path, rds, model)
    assert model.statuses == {"grow-w": ["available"], "grow-r": ["available"]}


def test_a_dead_reader_is_restarted_and_leaves_the_reader_endpoint_meanwhile(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("heal", "aurora-fake", ["heal-w", "heal-r"], writer="heal-w")
    model = FakeModel(rds)
    reconciler = _healthy(tmp_path, rds, model)
    fake_engine.calls.clear()
    model.statuses.clear()
    reconciler.servers["heal-r"].dead = True
    assert reconciler.check_health() is True
    assert reconciler.roles["heal-r"] == "restarted"
    assert reconciler.snapshot()[1]["heal"]["readers"] == []  # out of the reader endpoint until it replicates
    _pass(reconciler)
    assert ("start", "heal-r") in fake_engine.calls
    assert ("replicate", "heal-r", reconciler.servers["heal-w"].port) in fake_engine.calls
    assert model.statuses["heal-r"] == ["rebooting", "available"]
    assert reconciler.snapshot()[1]["heal"]["readers"] == ["heal-r"]
    assert any("heal-r restarted" in e for e in model.events)
    assert reconciler.check_health() is False


def test_a_dead_writer_is_restarted_on_its_data_and_the_reader_applies_all_of_it_before_taking_writes(
    tmp_path, fake_engine
):
    rds = FakeRds()
    rds.cluster("auto", "aurora-fake", ["auto-a", "auto-b"], writer="auto-a")
    model = FakeModel(rds)
    reconciler = _healthy(tmp_path, rds, model)
    fake_engine.calls.clear()
    reconciler.servers["auto-a"].dead = True
    reconciler.check_health()
    assert fake_engine.calls[:3] == [
        ("start", "auto-a"),  # on its own data: it holds every commit it acknowledged
        ("ready", "auto-a"),
        ("promote", "auto-b", "position-of-auto-a"),  # all of it, not only what auto-b had received
    ]
    assert rds.clusters[0]["DBClusterMembers"] == [
        {"DBInstanceIdentifier": "auto-a", "IsClusterWriter": False},
        {"DBInstanceIdentifier": "auto-b", "IsClusterWriter": True},
    ]  # the control plane shows the new writer, as after Aurora's automatic failover
    assert "Started cross AZ failover to DB instance: auto-b" in model.events
    assert model.events[-1] == "Completed failover to DB instance: auto-b"
    assert reconciler.snapshot()[1]["auto"]["readers"] == []
    assert ("acks", "auto-b", False) in fake_engine.calls  # no reader yet: the new writer must not wait for one
    _pass(reconciler)
    assert ("replicate", "auto-a", reconciler.servers["auto-b"].port) in fake_engine.calls  # back, as a reader
    assert fake_engine.calls.count(("start", "auto-a")) == 1
    assert reconciler.restart_pending() is False
    assert reconciler.snapshot()[1]["auto"]["writer"] == "auto-b"
    assert reconciler.snapshot()[1]["auto"]["readers"] == ["auto-a"]
    assert fake_engine.calls[-1] == ("acks", "auto-b", True)


def test_a_dead_writer_whose_reader_cannot_catch_up_takes_writes_again(tmp_path, fake_engine):
    rds, model, reconciler = _reader_behind(tmp_path, "keep")
    reconciler.servers["keep-a"].dead = True
    reconciler.check_health()
    _pass(reconciler)
    assert ("promote refused", "keep-b", "position-of-keep-a") in fake_engine.calls
    assert ("promote", "keep-a", None) in fake_engine.calls  # restarted in place, as Aurora with no good reader
    assert reconciler.snapshot()[1]["keep"]["writer"] == "keep-a"
    assert "Failover to DB instance keep-b failed" in model.events
    assert [m["IsClusterWriter"] for m in rds.clusters[0]["DBClusterMembers"]] == [True, False]


def test_a_replica_that_cannot_replicate_is_rebuilt_from_the_writer_and_its_data_kept(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("fix", "aurora-fake", ["fix-w", "fix-r"], writer="fix-w")
    model = FakeModel(rds)
    reconciler = _healthy(tmp_path, rds, model)
    broken = reconciler.servers["fix-r"]
    (broken.datadir / "rows").write_text("diverged")
    broken.broken = True
    fake_engine.calls.clear()
    model.statuses.clear()
    assert reconciler.reconcile() is True  # every full pass checks the readers
    rebuilt = reconciler.servers["fix-r"]
    assert rebuilt is not broken and rebuilt.server_id not in (broken.server_id, reconciler.servers["fix-w"].server_id)
    assert not (rebuilt.datadir / "rows").exists()  # from the template, not on the diverged data
    kept = list((tmp_path / "data" / "orphans").glob("fix-r-*/rows"))
    assert len(kept) == 1 and kept[0].read_text() == "diverged"  # never deleted
    assert ("acks", "fix-w", False) in fake_engine.calls  # the writer no longer waits for it
    assert reconciler.snapshot()[1]["fix"]["readers"] == []
    assert model.statuses["fix-r"] == ["rebooting"]
    assert any("rebuilt" in e for e in model.events)
    _pass(reconciler)
    assert ("replicate", "fix-r", reconciler.servers["fix-w"].port) in fake_engine.calls
    assert reconciler.snapshot()[1]["fix"]["readers"] == ["fix-r"]
    assert model.statuses["fix-r"] == ["rebooting", "available"]
    second = _healthy(tmp_path, rds, FakeModel(rds))  # a restarted daemon keeps the rebuilt server's id
    assert second.servers["fix-r"].server_id == rebuilt.server_id


def test_a_reader_joins_the_reader_endpoint_only_once_it_holds_what_the_writer_had(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("lag", "aurora-fake", ["lag-w", "lag-r"], writer="lag-w")
    for described in rds.instances:
        described["DBInstanceStatus"] = "creating"
    model = FakeModel(rds)
    reconciler = Reconciler(
        tmp_path / "data", "admin-secret", lambda: [rds], lambda client, c: f"pw-{c.identifier}", model=model
    )
    reconciler.reconcile()
    reconciler.servers["lag-r"].behind = True
    reconciler.servers["lag-r"].source = None  # replication not running yet
    reconciler.roles["lag-r"] = "restarted"
    _pass(reconciler)
    assert reconciler.roles["lag-r"] == "catching-up" and reconciler.catching_up()
    assert reconciler.snapshot()[1]["lag"]["readers"] == [] and "lag-r" not in model.statuses  # still creating
    reconciler.servers["lag-r"].behind = False
    assert reconciler.check_health() is True
    reconciler.publish_states()
    assert reconciler.snapshot()[1]["lag"]["readers"] == ["lag-r"] and model.statuses["lag-r"][-1] == "available"


def test_reboot_with_force_failover_moves_the_writer_first(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("boot", "aurora-fake", ["boot-a", "boot-b"], writer="boot-a")
    model = FakeModel(rds)
    reconciler = _healthy(tmp_path, rds, model)
    fake_engine.calls.clear()
    model.reboots["boot-a"] = True
    model.set_status("", "boot-a", "rebooting")  # as RebootDBInstance(ForceFailover=True) leaves it
    _pass(reconciler)
    reconciler.restart_pending()
    _pass(reconciler)
    assert fake_engine.calls[:2] == [("fence", "boot-a"), ("promote", "boot-b", "position-of-boot-a")]
    assert ("start", "boot-a") in fake_engine.calls
    assert reconciler.snapshot()[1]["boot"]["writer"] == "boot-b"
    assert model.statuses["boot-a"][-1] == "available"


def test_a_restarted_daemon_reuses_server_ids_and_ports_and_never_bootstraps_twice(tmp_path, fake_engine):
    rds = FakeRds()
    rds.cluster("again", "aurora-fake", ["again-w", "again-r"], writer="again-w")
    first = _healthy(tmp_path, rds, FakeModel(rds))
    ids = {name: (server.server_id, server.port) for name, server in first.servers.items()}
    first.shutdown()
    fake_engine.calls.clear()
    second = _healthy(tmp_path, rds, FakeModel(rds))
    assert {name: (server.server_id, server.port) for name, server in second.servers.items()} == ids
    assert not [c for c in fake_engine.calls if c[0] in ("bootstrap", "remove")]
    assert ("promote", "again-w", None) in fake_engine.calls  # the writer takes writes again


def test_data_of_an_instance_the_control_plane_forgot_is_moved_aside_not_reused(tmp_path, fake_engine):
    leftover = tmp_path / "data" / "instances" / "fresh-w"
    leftover.mkdir(parents=True)
    (leftover / "rows").write_text("an old lab's data")
    rds = FakeRds()
    rds.cluster("fresh", "aurora-fake", ["fresh-w"], writer="fresh-w")
    _healthy(tmp_path, rds, FakeModel(rds))
    assert not (leftover / "rows").exists()  # its server started from the template
    kept = list((tmp_path / "data" / "orphans").glob("fresh-w-*/rows"))
    assert len(kept) == 1 and kept[0].read_text() == "an old lab's data"


def test_servers_stopped_in_parallel_each_forget_their_socket_without_failing(tmp_path):
    """The daemon stops a home's servers in parallel: each removes its socket and, when empty, the runtime folder.
    One found the folder gone between another's making it and tightening its mode (FileNotFoundError), and the
    daemon's stop ended there, before its last save."""
    datadir = tmp_path / "instances" / "db-1"
    errors: list[OSError] = []

    def stop_often(server_id: int) -> None:
        for _ in range(300):
            try:
                _forget_socket(datadir, server_id)
            except OSError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=stop_often, args=(server_id,)) for server_id in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_server_stopping_leaves_the_runtime_folder_of_one_still_starting(tmp_path):
    """A server's socket folder is made before mariadbd binds its socket there, which takes InnoDB's start; a
    server of the same home stopping meanwhile removed the folder when it found it empty, and the starting one
    could not listen. The folder goes only when the daemon stops every server (release)."""
    starting = socket_path(tmp_path / "instances" / "db-2", 2)  # made, mariadbd not listening yet
    _forget_socket(tmp_path / "instances" / "db-1", 1)  # another server of the home stops
    assert starting.parent.is_dir(), "the starting server's socket folder was removed under it"
    MariaDBEngine().release(tmp_path)
    assert not starting.parent.exists(), "the daemon's stop leaves no folder behind"
