"""After `down` + `up`, a restored DB instance is not `available` before its server answers again: a learner's
waiter that sees `available` connects at once, as on AWS. Before, the restored control plane said `available`
from the moment the daemon served until its first pass restarted the server (up to a second or more on a busy
machine), and a waiter started right after `up` returned at once, then found no running database."""

from __future__ import annotations

from support.sandbox_lab import aurora_cluster

from labkit import sandbox
from labkit.engines import engine_for
from labkit.sandbox.backend import SandboxBackend


def test_a_waiter_that_sees_a_restored_instance_available_can_query_it_at_once(own_home, monkeypatch):
    state = sandbox.up(quiet=True)
    cluster, password = aurora_cluster(SandboxBackend(), "restart", nodes=("writer",))
    sandbox.down(quiet=True)
    monkeypatch.setenv("LABKIT_SANDBOX_PORT", str(state.port))  # the same endpoint: a client made before `up`
    rds = SandboxBackend(endpoint=state.endpoint_url).client("rds")
    sandbox.up(quiet=True)
    described = rds.describe_db_instances(DBInstanceIdentifier="restart-writer")["DBInstances"][0]  # at once
    served = sandbox.read_state().instances.get("restart-writer", {})  # the endpoint map, read after RDS
    if described["DBInstanceStatus"] == "available":
        assert served.get("status") == "available", "RDS says available before the endpoint reaches a server"
    rds.get_waiter("db_instance_available").wait(
        DBInstanceIdentifier="restart-writer", WaiterConfig={"Delay": 0.05, "MaxAttempts": 2400}
    )
    host, port = sandbox.resolve(cluster["Endpoint"])
    conn = engine_for(cluster["Engine"]).dialect.dbapi.connect(
        host, port, "admin", password, "shop", connect_timeout=10, timeout=10
    )
    conn.cursor().execute("SELECT 1")
    conn.close()
