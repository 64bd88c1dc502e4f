"""A failover watched from the web app (issue 23 item 3): the shop's page and /health polled through the
tunnel while failover() runs, on a lab of its own (the roles swap)."""

from __future__ import annotations

import pytest
from support.sandbox_lab import sandbox_lab

from labkit.access.schema import create_schema
from labkit.access.sql import close_engines
from labkit.access.tunnel import close_all
from labkit.access.webapp import web_app
from labkit.aws.tags import NODE_FIRST_DB, db_instance_node, resource_name
from labkit.bench import watch_failover

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(sandbox_home):
    config, backend = sandbox_lab("appwatch", "lin")
    create_schema(config=config, backend=backend)
    yield config, backend
    close_engines()
    close_all()


def test_the_app_follows_the_endpoints_through_a_failover_and_the_timeline_shows_the_move(lab):
    config, backend = lab
    first, second = (resource_name(config.lab, config.learner, node) for node in (NODE_FIRST_DB, db_instance_node(2)))
    with web_app(config, backend) as app:
        watch = watch_failover(app, after=1.0, config=config, backend=backend)
    assert (watch.failover.writer_before, watch.failover.writer_after) == (first, second)
    polls = watch.polls
    before, after = polls[polls["t_s"] < watch.failover_at_s], polls[polls["t_s"] > watch.failover_at_s + 1.5]
    assert len(before) >= 2 and len(after) >= 2
    assert set(before["writer endpoint"]) == {first} and set(before["page"]) == {second}
    assert set(after.tail(2)["writer endpoint"]) == {second} and set(after.tail(2)["page"]) == {first}
    phases = watch.timeline()
    assert phases["polls"].sum() == len(polls) and len(phases) >= 2
    assert phases.iloc[0]["writer endpoint"] == first and phases.iloc[-1]["writer endpoint"] == second
    assert watch.failover.lost == [] and watch.plot() is not None
    assert "page loads failed" in watch.headline()
