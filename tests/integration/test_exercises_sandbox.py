"""04's and 05's exercises against a real sandbox: their checks query the databases themselves (through the same
tunnels and engines as the notebook), so a wrong INSERT, a read that missed the row, or an answer from the wrong
instance is not yet, whatever the learner's cell printed."""

from __future__ import annotations

import pandas as pd
import pytest
from support.sandbox_lab import sandbox_lab

from labkit.access.schema import create_schema
from labkit.access.sql import close_engines, sql, whoami
from labkit.access.tunnel import close_all
from labkit.bench import failover
from labkit.errors import LabkitError
from labkit.workbook.exercises import NotYet, exercise
from labkit.workbook.exercises.sql import CUSTOMER

LAB, LEARNER = "exlab", "ada"
INSERT = "INSERT INTO orders (product_id, customer, quantity) VALUES (:product, :customer, :quantity)"


@pytest.fixture(scope="module")
def lab(sandbox_home):
    config, backend = sandbox_lab(LAB, LEARNER)
    create_schema(config=config, backend=backend)
    yield config, backend
    close_engines()
    close_all()


def _said(lab, exercise_id, *answers):
    config, backend = lab
    return "\n".join(exercise(exercise_id, config, backend).evaluate(*answers).problems)


def test_a_pasted_insert_fails_and_only_a_bound_one_passes(lab):
    config, backend = lab
    assert "the writer has no order for the customer" in _said(lab, "04.param-insert")
    assert "this builds on 04.param-insert" in _said(lab, "04.read-on-reader", pd.DataFrame({"id": [1]}))
    with pytest.raises(LabkitError):  # the learner's f-string: the quote ends the string, MySQL refuses it
        sql(f"INSERT INTO orders (product_id, customer, quantity) VALUES (7, '{CUSTOMER}', 2)", config=config,
            backend=backend)  # fmt: skip
    assert "bind it as a parameter" in _said(lab, "04.param-insert")
    sql(INSERT, params={"product": 8, "customer": CUSTOMER, "quantity": 2}, config=config, backend=backend)
    assert "is product 8, quantity 2: the task asks for product 7, quantity 2" in _said(lab, "04.param-insert")
    sql(INSERT, params={"product": 7, "customer": CUSTOMER, "quantity": 2}, config=config, backend=backend)
    assert exercise("04.param-insert", config, backend).evaluate().passed
    assert int(sql("SELECT COUNT(*) AS n FROM orders", config=config, backend=backend)["n"][0]) >= 20


def test_the_row_must_be_read_back_from_the_reader(lab):
    config, backend = lab
    assert "keep the DataFrame" in _said(lab, "04.read-on-reader", "Robert")
    other = sql("SELECT id, customer FROM orders WHERE id = 1", on="reader", config=config, backend=backend)
    assert "found has no row of the order(s)" in _said(lab, "04.read-on-reader", other)
    found = sql(
        "SELECT id, customer FROM orders WHERE customer = :customer", on="reader", params={"customer": CUSTOMER},
        config=config, backend=backend,
    )  # fmt: skip
    assert exercise("04.read-on-reader", config, backend).evaluate(found).passed


def test_who_answered_must_be_a_reader_of_the_cluster(lab):
    config, backend = lab
    on_writer = whoami("writer", config=config, backend=backend)
    assert "the task asks about the reader endpoint" in _said(lab, "04.who-answered", on_writer)
    forged = whoami("reader", config=config, backend=backend).assign(instance=f"{LAB}-{LEARNER}-db-1")
    assert "is the writer now" in _said(lab, "04.who-answered", forged)
    assert (
        exercise("04.who-answered", config, backend).evaluate(whoami("reader", config=config, backend=backend)).passed
    )


def test_the_new_writer_is_the_one_rds_names_after_a_failover(lab):
    config, backend = lab  # last in the module: it swaps the roles
    before = whoami("writer", config=config, backend=backend)
    assert exercise("05.new-writer", config, backend).evaluate(before).passed
    report = failover(interval=0.1, baseline=1.0, settle=1.0, timeout=60, config=config, backend=backend)  # as in 05
    assert report.writer_after == f"{LAB}-{LEARNER}-db-2"
    with pytest.raises(NotYet) as stale:
        exercise("05.new-writer", config, backend).check(before)
    shown = "\n".join(stale.value.notebook_lines())
    assert f"{LAB}-{LEARNER}-db-1 answered, but RDS names {LAB}-{LEARNER}-db-2 the writer now" in shown
    after = whoami("writer", config=config, backend=backend)
    assert exercise("05.new-writer", config, backend).check(after).outcome.resources["writer"].endswith("db-2")
