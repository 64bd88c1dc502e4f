"""How the suite is spread over the cores (support/scheduling.py): an integration module stays on one worker."""

from __future__ import annotations

import pytest
from support.scheduling import ModulesTogether, make_scheduler


@pytest.fixture
def two_workers(pytestconfig, monkeypatch) -> pytest.Config:
    monkeypatch.setattr(pytestconfig.option, "tx", ["2*popen"])  # what `-n 2` sets
    return pytestconfig


@pytest.fixture
def scheduler(two_workers) -> ModulesTogether:
    return ModulesTogether(two_workers)


def test_an_integration_modules_tests_are_one_unit_of_work(scheduler):
    tests = [
        "tests/integration/test_tunnel_sandbox.py::test_tunnel_opens_a_session_and_ends_it_on_close",
        "tests/integration/test_tunnel_sandbox.py::test_nothing_outlives_the_process_that_opened_the_tunnel[kill]",
    ]
    assert {scheduler._split_scope(test) for test in tests} == {"tests/integration/test_tunnel_sandbox.py"}


def test_every_other_test_is_a_unit_of_its_own(scheduler):
    tests = ["tests/unit/test_plan.py::test_a", "tests/unit/test_plan.py::test_b[x]", "tests/unit/test_cost.py::test_a"]
    assert [scheduler._split_scope(test) for test in tests] == tests
    assert scheduler._split_scope("tests/integrationish/test_x.py::test_a") == "tests/integrationish/test_x.py::test_a"


@pytest.mark.parametrize(("dist", "ours"), [("load", True), ("loadgroup", True), ("loadfile", False), ("each", False)])
def test_a_distribution_the_developer_chose_is_left_to_xdist(two_workers, monkeypatch, dist, ours):
    monkeypatch.setattr(two_workers.option, "dist", dist)
    assert isinstance(make_scheduler(two_workers, None), ModulesTogether) is ours
