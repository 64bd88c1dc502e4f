"""A lost or refused connection is blamed on a rule only when the reachability engine says one decides
(issue 15 item 8, issue 16 item 10). Before, any refusal on the far side of a tunnel read "security groups ...
see can_reach for the rule to add", also for a stopped writer, a stopped sandbox or a broken database server;
and on AWS, where a security group drops packets (a timeout, no refusal), nothing named the rule at all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest
import sqlalchemy

from labkit.access.sql import explain
from labkit.access.tunnel.target import TunnelTarget
from labkit.config import LabConfig
from labkit.engines.aurora_mysql import AURORA_MYSQL
from labkit.lab.apply import apply
from labkit.security import revoke_rules

CONFIG = LabConfig(lab="diag", learner="dee")
# what the sandbox's plugin says when the database behind the endpoint does not listen (a dead writer)
DEAD_DATABASE = "the sandbox could not forward it: [Errno 111] Connection refused"


WRITER_TARGET = TunnelTarget("writer", "i-0", "db.example", 3306)


@dataclass
class SeenTunnel:
    """What explain() reads of a tunnel: where it goes, and what its plugin reported."""

    backend: Any
    config: LabConfig
    refusal: str | None = None
    target: TunnelTarget = WRITER_TARGET

    def recent_refusal(self, within: float = 5.0, wait: float = 1.0) -> str | None:
        return self.refusal


def lost(code: int = 2013, message: str = "Lost connection to MySQL server during query") -> Any:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, message))


@pytest.fixture
def lab(strict_backend):
    apply(CONFIG, strict_backend, stream=io.StringIO())
    return strict_backend


def test_a_dropped_connection_on_aws_names_the_deciding_rule(lab):
    """AWS drops what a security group does not allow: a timeout and no refusal, yet the rule is named."""
    revoke_rules(CONFIG, "sg-db", 3306, backend=lab)
    timed_out = lost(2003, "Can't connect to MySQL server on '127.0.0.1' (timed out)")
    blamed = explain(timed_out, "writer", SeenTunnel(lab, CONFIG), AURORA_MYSQL.dialect)
    assert blamed.field == "security groups"
    assert "blocked at security group ingress" in blamed.message
    assert "authorize-security-group-ingress" in blamed.fix and "can_reach('instance', 'writer')" in blamed.fix


def test_a_refusal_while_the_rules_allow_it_is_not_blamed_on_security_groups(lab):
    refused = explain(lost(), "writer", SeenTunnel(lab, CONFIG, DEAD_DATABASE), AURORA_MYSQL.dialect)
    assert refused.field == "database" and "security group" not in refused.message.lower()
    assert "the rules allow it and RDS reports it available" in refused.message
    assert DEAD_DATABASE in refused.message


def test_a_stopped_writer_is_named_as_such(lab):
    rds = lab.client("rds")
    writer = f"{CONFIG.lab}-{CONFIG.learner}-db-1"
    rds.stop_db_instance(DBInstanceIdentifier=writer)
    stopped = explain(lost(), "writer", SeenTunnel(lab, CONFIG, DEAD_DATABASE), AURORA_MYSQL.dialect)
    assert stopped.field == "writer"
    assert f"{writer} is stopped" in stopped.message and "labkit.status()" in stopped.fix


def test_a_reader_that_is_gone_is_named_as_such(lab):
    rds = lab.client("rds")
    rds.delete_db_instance(DBInstanceIdentifier=f"{CONFIG.lab}-{CONFIG.learner}-db-2")
    gone = explain(lost(), "reader", SeenTunnel(lab, CONFIG, DEAD_DATABASE), AURORA_MYSQL.dialect)
    assert gone.field == "on" and "has no reader instance" in gone.message and "only='database'" in gone.fix


def test_a_backend_whose_service_is_down_says_so_plainly(lab, monkeypatch):
    down = [("sandbox", False, "not running: run `labkit sandbox up`")]
    monkeypatch.setattr(lab, "service_checks", lambda: down)
    stopped = explain(lost(), "reader", SeenTunnel(lab, CONFIG, DEAD_DATABASE), AURORA_MYSQL.dialect)
    assert stopped.field == "sandbox" and "not running" in stopped.message
    assert stopped.fix == "run `labkit sandbox up`"
