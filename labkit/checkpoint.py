"""The checkpoint at the end of each notebook: is the learner's lab where this step should leave it?"""

from __future__ import annotations

from dataclasses import dataclass, field

from .apply import status, verify
from .backend import Backend
from .config import LabConfig
from .plan import STAGES, lab_graph, stage_of

STEPS = ("setup", *STAGES, "cleanup")


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
    wanted = [node for node in lab_graph(config) if stage_of(node) == stage]
    existing = set(status(config, backend)["node"])
    return [f"{node} does not exist: rerun the apply cell above" for node in wanted if node not in existing]


def checkpoint(step: str, config: LabConfig | None = None, backend: Backend | None = None) -> Checkpoint:
    """Check the state a notebook should leave: `setup`, `network`, `database`, `compute` or `cleanup`."""
    if step not in STEPS:
        from .errors import ConfigError

        raise ConfigError(f"unknown checkpoint {step!r}", field="step", fix=f"use one of {', '.join(STEPS)}")
    result = Checkpoint(step)
    if step == "setup":
        from .checks import environment_report

        report = environment_report(backend)
        bad = report[report["status"] != "ok"]
        result.problems = [f"{check}: {row['detail']}" for check, row in bad.iterrows()]
        return result
    config = config or LabConfig.load()
    if step == "cleanup":
        left = verify(config, backend)
        result.problems = [f"{r.what} {r.id} remains: run `labkit.destroy(config)` again" for r in left.itertuples()]
        return result
    result.problems = _missing_nodes(config, step, backend)
    if step == "compute" and result.ok:
        from .security import can_reach, lint

        verdict = can_reach("instance", "writer", 3306, config, backend)
        if not verdict.reachable:
            result.problems.append(f"the instance cannot reach the writer on 3306: {verdict.headline}")
        result.problems += [f"lint: {finding.finding}" for finding in lint(config, backend).high]
    return result
