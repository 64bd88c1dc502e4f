"""The checkpoint at the end of each notebook: is the learner's lab where this step should leave it?"""

from __future__ import annotations

from dataclasses import dataclass, field

from labkit.access.sql import close_engines, sql, whoami
from labkit.aws.backend import Backend
from labkit.config import LabConfig
from labkit.engines import engine_of
from labkit.errors import ConfigError, LabkitError
from labkit.lab.graph import STAGES, lab_graph, stage_closure, stage_of
from labkit.lab.inventory import status, verify
from labkit.security import can_reach, lint
from labkit.workbook.doctor import environment_report
from labkit.workbook.exercises import unfinished

STEPS = ("setup", *STAGES, "sql", "benchmark", "failover", "cleanup")
NOTEBOOKS = dict(zip(STEPS, ("00_setup", "01_network", "02_database", "03_compute", "04_sql", "05_benchmark",
                             "06_failover", "07_cleanup"), strict=True))  # fmt: skip
AFTER_SQL = ("sql", "benchmark", "failover")  # the steps whose lab has the schema, and a reader on each endpoint


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
    """Check the state a notebook should leave: `setup`, `network`, `database`, `compute`, `sql`, `benchmark`,
    `failover` or `cleanup`."""
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
    if step in AFTER_SQL:  # after a failover too: each endpoint must land on the right role
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
    if step in ("network", "compute"):  # the rules, not only the groups: a revoked rule is not ready
        result.problems += [f"lint: {finding.finding}" for finding in lint(config, backend).high]
    result.problems += unfinished(NOTEBOOKS[step], config, backend)  # the learner's own part of the stage
    return result


def _catch_up(step: str, missing: list[str], graph: dict) -> str:
    """The fastest way to build what `step` needs when the stages `missing` are not there yet. This notebook's
    own apply builds only its stage and what that depends on; it is offered for those stages alone."""
    catch_up_all = "`labkit.apply(config)` builds them all" + (
        ", then `labkit.create_schema(config=config)`" if step in ("benchmark", "failover") else ""
    )
    if step not in STAGES:
        return f"or catch up at once: {catch_up_all}"
    own = f'this notebook\'s `labkit.apply(config, only="{step}")`'
    built = {stage_of(graph[node]) for node in stage_closure(graph, step)}
    if all(stage in built for stage in missing):
        return f"or run on: {own} builds {_stages(missing)} too"
    other = [stage for stage in missing if stage not in built]
    return f"or catch up at once: {catch_up_all} (this notebook's own apply does not build {_stages(other)})"


def _stages(stages: list[str]) -> str:
    return f"the {_and(stages)} stage{'s' if len(stages) > 1 else ''}"


def _notebooks(stages: list[str]) -> str:
    return _and([NOTEBOOKS[stage] for stage in stages])


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


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
    missing = {stage: [n for n, r in graph.items() if stage_of(r) == stage and n not in existing] for stage in earlier}
    missing = {stage: nodes for stage, nodes in missing.items() if nodes}
    if missing:
        count = sum(len(nodes) for nodes in missing.values())
        return (
            f"not ready for {here}: {_stages(list(missing))} {'are' if len(missing) > 1 else 'is'} missing "
            f"({count} resources); run {_notebooks(list(missing))} first, {_catch_up(step, list(missing), graph)}"
        )
    return f"ready for {here}" + (": what the earlier notebooks build is in place" if earlier else "")


def begin(step: str, config: LabConfig | None = None, backend: Backend | None = None) -> LabConfig:
    """The first cell of a notebook: load the saved config, say which lab and learner it is (and where that
    came from), and in one line whether the earlier notebooks have run (which to run first if not)."""
    from labkit.display import say  # pandas: already loaded by status()

    if config is None:
        path = LabConfig.default_path()
        config = LabConfig.load()
        source = f"from {path}" if path.exists() else "the defaults: no lab saved yet (00_setup saves one)"
    else:
        source = "as given"
    say(f"lab {config.lab}, learner {config.learner} on {config.backend} in {config.region} ({source})")
    line = where_to_start(step, config, backend)
    say(line)
    if line.startswith("ready") and step not in ("setup", "cleanup"):  # what this notebook needs from earlier exercises
        for problem in unfinished(NOTEBOOKS[step], config, backend, before=True):
            say(f"note: {problem}")
    if step in AFTER_SQL:
        from labkit.workbook.form import warnings  # the form's wording: one explanation of readers = 0

        for note in warnings(config):
            say(f"note: {note}")
    return config
