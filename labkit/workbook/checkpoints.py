"""The checkpoint at the end of each notebook: is the learner's lab where this step should leave it?"""

from __future__ import annotations

from dataclasses import dataclass, field

from labkit.access.sql import close_engines, sql, whoami
from labkit.aws.backend import Backend
from labkit.config import LabConfig
from labkit.engines import engine_of
from labkit.errors import ConfigError, LabkitError
from labkit.lab.graph import STAGES, lab_graph, stage_of
from labkit.lab.inventory import status, verify
from labkit.security import can_reach, lint
from labkit.workbook.doctor import environment_report
from labkit.workbook.exercises import unfinished

STEPS = ("setup", *STAGES, "sql", "benchmark", "cleanup")
NOTEBOOKS = dict(zip(STEPS, ("00_setup", "01_network", "02_database", "03_compute", "04_sql", "05_benchmark",
                             "06_cleanup"), strict=True))  # fmt: skip


@dataclass
class Checkpoint:
    """A plain verdict, and each problem with what to do about it."""

    step: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __repr__(self) -> str:
        if self.ok:
            return f"Checkpoint {self.step}: ready."
        return f"Checkpoint {self.step}: NOT ready\n" + "\n".join(f"  - {p}" for p in self.problems)


def _missing_nodes(config: LabConfig, stage: str, backend: Backend | None) -> list[str]:
    wanted = [node for node, resource in lab_graph(config).items() if stage_of(resource) == stage]
    existing = set(status(config, backend)["node"])
    return [f"{node} does not exist: rerun the apply cell above" for node in wanted if node not in existing]


def _sql_problems(config: LabConfig, backend: Backend | None) -> list[str]:
    """The schema is on the writer, the reader has replicated it, and each endpoint lands on the right role."""
    problems = []
    try:
        count = "SELECT COUNT(*) AS n FROM products"
        on_writer = int(sql(count, config=config, backend=backend)["n"][0])
        on_reader = int(sql(count, on="reader", config=config, backend=backend)["n"][0])
        if on_writer == 0:
            problems.append("the products table is empty: rerun the create_schema cell")
        elif on_reader != on_writer:
            problems.append(f"the reader has {on_reader} products, the writer {on_writer}: is replication running?")
        if bool(whoami("writer", config=config, backend=backend)["read_only"][0]):
            problems.append("the writer endpoint reached a read-only instance")
        if not bool(whoami("reader", config=config, backend=backend)["read_only"][0]):
            problems.append("the reader endpoint reached a writable instance")
    except LabkitError as exc:
        problems.append(f"{exc.message} (fix: {exc.fix})" if exc.fix else exc.message)
    finally:
        close_engines()
    return problems


def checkpoint(step: str, config: LabConfig | None = None, backend: Backend | None = None) -> Checkpoint:
    """Check the state a notebook should leave: `setup`, `network`, `database`, `compute`, `sql`, `benchmark` or `cleanup`."""
    if step not in STEPS:
        raise ConfigError(f"unknown checkpoint {step!r}", field="step", fix=f"use one of {', '.join(STEPS)}")
    result = Checkpoint(step)
    if step == "setup":
        report = environment_report(backend)
        bad = report[report["status"] != "ok"]
        result.problems = [f"{check}: {row['detail']}" for check, row in bad.iterrows()]
        return result
    config = config or LabConfig.load()
    if step == "cleanup":
        left = verify(config, backend)
        result.problems = [f"{r.what} {r.id} remains: run `labkit.destroy(config)` again" for r in left.itertuples()]
        return result
    if step in ("sql", "benchmark"):  # after a failover too: each endpoint must land on the right role
        result.problems = unfinished(NOTEBOOKS[step], config, backend) + _sql_problems(config, backend)
        return result
    result.problems = _missing_nodes(config, step, backend)
    if not result.ok:
        return result
    if step == "compute":
        port = engine_of(config).port
        verdict = can_reach("instance", "writer", port, config, backend)
        if not verdict.reachable:
            result.problems.append(f"the instance cannot reach the writer on {port}: {verdict.headline}")
        result.problems += [f"lint: {finding.finding}" for finding in lint(config, backend).high]
    result.problems += unfinished(NOTEBOOKS[step], config, backend)  # the learner's own part of the stage
    return result


def _catch_up(step: str, missing_stage: str) -> str:
    """The fastest way to build what `step` needs when `missing_stage` is not there yet."""
    if step in STAGES:  # this notebook's own apply cell builds the stages it depends on too
        return f'or run on: this notebook\'s `labkit.apply(config, only="{step}")` builds it too'
    return "or catch up at once with `labkit.apply(config)`" + (
        " then `labkit.create_schema(config=config)`" if step == "benchmark" else ""
    )


def where_to_start(step: str, config: LabConfig, backend: Backend | None = None) -> str:
    """One line: is the lab ready for notebook `step`, and if not, which notebook to run first (or how to catch up)."""
    if step not in STEPS:
        raise ConfigError(f"unknown step {step!r}", field="step", fix=f"use one of {', '.join(STEPS)}")
    here = NOTEBOOKS[step]
    if step == "setup":
        return f"ready for {here}"
    if step == "cleanup":
        return f"ready for {here}: destroy deletes whatever exists of this lab, whichever notebooks ran"
    try:
        existing = set(status(config, backend)["node"])
    except LabkitError as exc:
        return f"not ready for {here}: {exc.message}; run 00_setup first ({exc.fix})" if exc.fix else exc.message
    graph = lab_graph(config)
    earlier = STAGES[: STAGES.index(step)] if step in STAGES else STAGES
    for stage in earlier:
        missing = [n for n, r in graph.items() if stage_of(r) == stage and n not in existing]
        if missing:
            return (
                f"not ready for {here}: the {stage} stage is missing ({len(missing)} resources); "
                f"run {NOTEBOOKS[stage]} first, {_catch_up(step, stage)}"
            )
    return f"ready for {here}" + (": what the earlier notebooks build is in place" if earlier else "")


def begin(step: str, config: LabConfig | None = None, backend: Backend | None = None) -> LabConfig:
    """The first cell of a notebook: load the saved config and say in one line whether the earlier notebooks
    have run (and which one to run first if not). Returns the config."""
    from labkit.display import say  # pandas: already loaded by status()

    config = config or LabConfig.load()
    line = where_to_start(step, config, backend)
    say(line)
    if line.startswith("ready") and step not in ("setup", "cleanup"):  # what this notebook needs from earlier exercises
        for problem in unfinished(NOTEBOOKS[step], config, backend, before=True):
            say(f"note: {problem}")
    return config
