"""The snapshot holds a whole class: a paginated Resource Groups Tagging API answer (moto keeps a generator per
page) never stops the sandbox from saving, and several labs survive `down` + `up` with their data.

Its own LABKIT home (and so its own daemon): it stops and starts it on purpose.
"""

from __future__ import annotations

import io
import json

import pymysql
from botocore.config import Config

from labkit import sandbox
from labkit.access.lookup import lab_cluster
from labkit.config import LabConfig
from labkit.lab.apply import apply
from labkit.sandbox.processes import pid_alive
from labkit.sandbox.state import read_state

LEARNERS = ("ada", "grace", "linus")


def _backend():
    from labkit.sandbox.backend import SandboxBackend

    return SandboxBackend()


def _pages() -> list[list[str]]:
    """Every page of GetResources, as `aws resourcegroupstaggingapi get-resources` reads them."""
    tagging = _backend().client("resourcegroupstaggingapi")
    return [
        [r["ResourceARN"] for r in page["ResourceTagMappingList"]]
        for page in tagging.get_paginator("get_resources").paginate()
    ]


def _listed() -> list[str]:
    return sorted(arn for page in _pages() for arn in page)


def _account() -> dict:
    """Every lab's network resources (ids and tags) and its database cluster, as a learner lists them."""
    backend = _backend()
    ec2 = backend.client("ec2")
    return {
        "vpcs": sorted(
            (v["VpcId"], json.dumps(sorted(map(str, v.get("Tags", []))))) for v in ec2.describe_vpcs()["Vpcs"]
        ),
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]),
        "groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "clusters": sorted(
            c["DbClusterResourceId"] for c in backend.client("rds").describe_db_clusters()["DBClusters"]
        ),
    }


def _rows(cluster: dict) -> list[tuple]:
    secret = _backend().client("secretsmanager").get_secret_value(SecretId=cluster["MasterUserSecret"]["SecretArn"])
    host, port = sandbox.resolve(cluster["Endpoint"])
    with pymysql.connect(
        host=host, port=port, user=cluster["MasterUsername"], password=json.loads(secret["SecretString"])["password"],
        database=cluster["DatabaseName"], autocommit=True, connect_timeout=5,
    ) as conn, conn.cursor() as cur:  # fmt: skip
        cur.execute("CREATE TABLE IF NOT EXISTS kept (id INT PRIMARY KEY)")
        cur.execute("INSERT IGNORE INTO kept VALUES (1)")
        cur.execute("SELECT id FROM kept")
        return list(cur.fetchall())


def _tag_every_vpc(key: str) -> None:
    """A changing call per lab, each acknowledged (saved) before it returns; one attempt each (an SDK retries a
    503, and a retry would find the account rolled back to what can be saved)."""
    backend = _backend()
    ec2 = backend.session().client(
        "ec2", endpoint_url=backend.endpoint_url(), config=Config(retries={"total_max_attempts": 1})
    )
    for vpc in ec2.describe_vpcs()["Vpcs"]:
        ec2.create_tags(Resources=[vpc["VpcId"]], Tags=[{"Key": key, "Value": "yes"}])


def test_a_class_survives_a_restart_after_a_paginated_get_resources(own_home):
    sandbox.up(quiet=True)
    configs = [LabConfig(lab="class", learner=learner) for learner in LEARNERS]
    apply(configs[0], _backend(), only="database", stream=io.StringIO())  # a lab with its databases
    for config in configs[1:]:
        apply(config, _backend(), only="network", stream=io.StringIO())
    sandbox.wait_for_databases(2)
    cluster = lab_cluster(configs[0], _backend())
    assert _rows(cluster) == [(1,)]
    assert len(_pages()) > 1, "three labs must fill more than one page of GetResources"
    _tag_every_vpc("before-restart")  # answered (and saved) although moto holds the pages' generators
    account, listed = _account(), _listed()

    sandbox.down(quiet=True)
    sandbox.up(quiet=True)
    sandbox.wait_for_databases(2)
    assert _account() == account  # every lab, with its ids and the tags of the last acknowledged calls
    assert _rows(cluster) == [(1,)]  # and the database's rows
    assert _listed() == listed
    _tag_every_vpc("after-restart")  # the restarted daemon saves too (its warm-up paged GetResources as well)
    state = read_state()
    sandbox.wait_for_databases(2)
    assert state is not None and pid_alive(state.daemon_pid)
    assert sandbox.status()["running"] is True
    tags = {t["Key"] for v in _backend().client("ec2").describe_vpcs()["Vpcs"] for t in v.get("Tags", [])}
    assert {"before-restart", "after-restart"} <= tags
