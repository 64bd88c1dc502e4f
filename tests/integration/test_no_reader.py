"""A lab with no reader (readers = 0), as a learner may choose in 00's form (issue 23): Aurora then sends the
reader endpoint to the writer, so the reader lessons must explain, not quietly act on the writer."""

from __future__ import annotations

import io

import pytest

from labkit import sandbox
from labkit.access.schema import create_schema
from labkit.access.sql import close_engines, sql, whoami
from labkit.access.tunnel import close_all
from labkit.bench import benchmark, compare
from labkit.config import LabConfig
from labkit.errors import LabkitError
from labkit.lab.apply import apply
from labkit.sandbox.backend import SandboxBackend

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(sandbox_home):
    sandbox.reset()
    backend = SandboxBackend()
    config = LabConfig(lab="noreader", learner="zed", readers=0)
    apply(config, backend, stream=io.StringIO())
    sandbox.wait_for_databases(1)
    create_schema(config=config, backend=backend)
    yield config, backend
    close_engines()
    close_all()


def test_a_write_sent_to_the_reader_endpoint_is_rolled_back_on_the_writer_and_explained(lab):
    config, backend = lab
    assert not whoami("reader", config=config, backend=backend)["read_only"][0], "the reader endpoint is the writer"
    with pytest.raises(LabkitError) as refused:
        sql("DELETE FROM orders WHERE id = 1", on="reader", config=config, backend=backend)
    assert refused.value.field == "readers" and "rolled back" in refused.value.message
    assert sql("SELECT COUNT(*) AS n FROM orders WHERE id = 1", config=config, backend=backend)["n"][0] == 1
    reads = sql("SELECT COUNT(*) AS n FROM products", on="reader", config=config, backend=backend)
    assert reads["n"][0] == 100, "reads on the reader endpoint still work (they reach the writer, as on Aurora)"


def test_the_writer_against_reader_measurements_say_there_is_no_reader(lab):
    config, backend = lab
    for measure in (lambda: compare(rounds=2, max_rounds=2, config=config, backend=backend),
                    lambda: benchmark(("writer", "reader"), count=10, config=config, backend=backend)):  # fmt: skip
        with pytest.raises(LabkitError) as refused:
            measure()
        assert refused.value.field == "readers" and "no reader" in refused.value.message
    assert benchmark("writer", count=10, config=config, backend=backend).samples["error"].isna().all()
