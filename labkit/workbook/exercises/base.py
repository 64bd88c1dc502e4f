"""The mechanics of an exercise: a task the learner does in a notebook, a check that reads the live lab, hints.

An exercise is declared once, in the module of its notebook, with `@exercise_check`: its id (`01.db-ingress`),
the task in one sentence, a hint and a bigger hint, the solution (the real line the solved notebook runs) and
the check, a function of the lab (and of the learner's answer, for a question) that reads the control plane,
the databases or the reachability engine, never the text of the answer, and returns an `Outcome`: passed, or
what is wrong. `LabExercise` is an exercise bound to a lab: `.check()` passes (and keeps signed evidence in the
learner's home) or raises `NotYet` with the reasons; `.hint()`, `.hint(2)`, `.solution()` on request.

`YourTurn` and `NotYet` stop Run All at their cell like any error, but show as a short, friendly note
(`notebook_lines`, used by labkit.workbook.shell), not a traceback.
"""

from __future__ import annotations

import ast
import dataclasses
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from labkit.engines import AuroraEngine, default_engine, engine_of
from labkit.errors import ConfigError, LabkitError

if TYPE_CHECKING:
    from labkit.aws.backend import Backend
    from labkit.config import LabConfig
    from labkit.security.model import Snapshot

DB_PORT = default_engine().port  # the port when neither a cluster nor a config says which engine


def engine_words(engine: AuroraEngine) -> dict[str, str]:
    """What a task or a hint may name of the lab's engine, as `{port}`, `{family}` ("MySQL") and `{engine}`."""
    return {"{port}": str(engine.port), "{family}": engine.family, "{engine}": engine.display_name}


def worded(text: str, engine: AuroraEngine) -> str:
    """`text` with the engine's words in place of `{port}`, `{family}` and `{engine}` (other braces, such as
    `params={...}` in a hint, are left alone)."""
    for name, value in engine_words(engine).items():
        text = text.replace(name, value)
    return text


def lab_engine(config: Any | None = None) -> AuroraEngine:
    """The engine of `config`, else of the saved lab (the default engine's when there is none or it is unreadable)."""
    if config is None:
        from labkit.config import LabConfig  # the saved lab.toml, read when a task is shown

        try:
            config = LabConfig.load()
        except LabkitError:
            return default_engine()
    return engine_of(config)


BOLD, DIM, RESET, GREEN, YELLOW, BLUE = "\x1b[1m", "\x1b[2m", "\x1b[0m", "\x1b[32m", "\x1b[33m", "\x1b[34m"


def engine_port(snapshot: Snapshot | None = None) -> int:
    """The port the lab's database listens on: the cluster's, else its engine's (the config's), else the default."""
    cluster = next(iter(snapshot.clusters.values()), None) if snapshot is not None else None
    scope = snapshot.scope if snapshot is not None else None
    return cluster.port if cluster is not None else (scope.db_port if scope and scope.db_port else DB_PORT)


# ----- what a check says -----


@dataclass(frozen=True)
class Outcome:
    """What a check found: the problems (none: passed), what it verified, and the resources it read."""

    problems: tuple[str, ...] = ()
    checked: str = ""
    resources: Mapping[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems


def passed(checked: str, resources: Mapping[str, str] | None = None, note: str = "") -> Outcome:
    """A passing outcome: `checked` says in one line what the live lab showed (it goes into the evidence)."""
    return Outcome((), checked, dict(resources or {}), note)


def not_yet(*problems: str) -> Outcome:
    """A failing outcome: each problem says what is wrong and what to do."""
    return Outcome(tuple(p for p in problems if p))


# ----- the lab a check reads -----


@dataclass
class LiveLab:
    """The learner's lab as a check sees it: config, backend, and descriptions read once per check."""

    config: LabConfig
    backend: Backend

    @cached_property
    def snapshot(self) -> Snapshot:
        """Groups, rules, instance, cluster and networks, described now (the reachability engine's input)."""
        from labkit.security.snapshot import gather  # the AWS calls happen at check time only

        return gather(self.backend, self.config)

    @cached_property
    def cluster(self) -> dict[str, Any]:
        """The lab's cluster as RDS describes it now (a LabkitError that says how to build it when missing)."""
        from labkit.access.lookup import lab_cluster  # start-up time: declaring exercises loads no AWS code

        return lab_cluster(self.config, self.backend)

    def group(self, node: str) -> str:
        """The id of the lab group tagged `node`; NotYet-worthy LabkitError when the network is not built."""
        scope = self.snapshot.scope
        found = scope.group_for(node) if scope else None
        if found is None:
            raise LabkitError(
                f"the lab has no security group {node} yet",
                field=node,
                fix="build the network first: run the `labkit.apply(...)` cell of 01_network",
            )
        return found


# ----- the declaration -----


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it is, what to do, how to get unstuck, the real solution, and the check."""

    id: str
    notebook: str
    task: str
    hints: tuple[str, ...]
    solution: str
    check: Callable[..., Outcome]
    answers: tuple[str, ...] = ()  # what .check() takes, in order: the learner's value(s), then lab objects
    needs: tuple[str, ...] = ()  # exercises whose lab state this one builds on (checked first)
    needed_later: bool = False  # later notebooks need the state it builds (their begin() says when it is missing)

    def for_engine(self, engine: AuroraEngine) -> Exercise:
        """This exercise as a lab of `engine` shows it: its task and hints in that engine's words (its port, the
        database it speaks). The solution is the same line for every engine (`port=config.db_port`)."""
        return dataclasses.replace(
            self, task=worded(self.task, engine), hints=tuple(worded(hint, engine) for hint in self.hints)
        )

    @property
    def defines(self) -> tuple[str, ...]:
        """The names the solution assigns (`reader_endpoint = ...`): what a later cell may find undefined."""
        tree = ast.parse(self.solution)
        names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)]  # fmt: skip
        return tuple(names)


REGISTRY: dict[str, Exercise] = {}


def exercise_check(
    exercise_id: str, *, notebook: str, task: str, hints: tuple[str, str], solution: str,
    answers: tuple[str, ...] = (), needs: tuple[str, ...] = (), needed_later: bool = False,
) -> Callable[[Callable[..., Outcome]], Callable[..., Outcome]]:  # fmt: skip
    """Register the decorated function as the check of a new exercise (ids are unique)."""

    def register(check: Callable[..., Outcome]) -> Callable[..., Outcome]:
        if exercise_id in REGISTRY:
            raise ValueError(f"exercise {exercise_id} is declared twice")
        REGISTRY[exercise_id] = Exercise(
            exercise_id, notebook, task, tuple(hints), solution.strip(), check, answers, needs, needed_later
        )
        return check

    return register


def in_order() -> list[Exercise]:
    """Every exercise in the workbook's order: by notebook, then as each notebook's module declares them."""
    return sorted(REGISTRY.values(), key=lambda exercise: exercise.notebook)


def find(exercise_id: Any) -> Exercise:
    """The exercise of that id, or a ConfigError listing the ids there are."""
    if isinstance(exercise_id, str) and exercise_id in REGISTRY:
        return REGISTRY[exercise_id]
    known = ", ".join(e.id for e in in_order())
    raise ConfigError(f"there is no exercise {exercise_id!r}", field="exercise", fix=f"use one of {known}")


# ----- how they show -----


def how_to_ask(exercise_id: str) -> str:
    return f'labkit.exercise("{exercise_id}").hint()  ·  a bigger hint: .hint(2)  ·  the answer: .solution()'


class ExerciseStop(LabkitError):
    """Stops Run All at an exercise's cell, shown as a short note (`notebook_lines`), not as a traceback."""

    title = ""
    colour = BLUE

    def __init__(self, exercise: Exercise, lines: list[str], fix: str) -> None:
        self.exercise = exercise
        self.lines = lines
        super().__init__(f"{self.title} ({exercise.id}): " + " ".join(lines), field=exercise.id, fix=fix)

    def notebook_lines(self) -> list[str]:
        """What the cell's error output shows: the title, the lines, and how to get unstuck."""
        head = f"{self.colour}{BOLD}{self.title}{RESET} · {self.exercise.id}"
        return [head, *(f"  {line}" for line in self.lines), f"  {DIM}stuck? {how_to_ask(self.exercise.id)}{RESET}"]


class YourTurn(ExerciseStop):
    """The placeholder of a learner's copy: this cell is the learner's to write."""

    title = "→ Your turn"

    def __init__(self, exercise: Exercise) -> None:
        super().__init__(
            exercise,
            [exercise.task, "Write your line here in place of `labkit.your_turn(...)`, run it, then the check below."],
            fix="write the line the task asks for in this cell",
        )


class NotYet(ExerciseStop):
    """A check that did not pass: what the live lab shows, and what to change."""

    title = "✗ Not yet"
    colour = YELLOW

    def __init__(self, exercise: Exercise, problems: tuple[str, ...]) -> None:
        lines = [("- " if n == 0 else "  ") + line for p in problems for n, line in enumerate(p.splitlines())]
        super().__init__(exercise, lines, fix=how_to_ask(exercise.id))


@dataclass(frozen=True)
class Passed:
    """A passed check, as the notebook shows it."""

    exercise: Exercise
    outcome: Outcome

    def text(self) -> str:
        note = f"\n  {self.outcome.note}" if self.outcome.note else ""
        return f"✓ {self.exercise.id} passed: {self.outcome.checked}{note}"

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        note = f"<br>{html.escape(self.outcome.note)}" if self.outcome.note else ""
        return (
            f'<div style="color:#1a7f37"><b>✓ {html.escape(self.exercise.id)} passed</b>: '
            f"{html.escape(self.outcome.checked)}{note}</div>"
        )


@dataclass(frozen=True)
class Note:
    """A hint or a solution: markdown in a notebook, text in a terminal."""

    title: str
    body: str
    code: bool = False

    def __repr__(self) -> str:
        return f"{self.title}\n{self.body}"

    def _repr_markdown_(self) -> str:
        body = f"```python\n{self.body}\n```" if self.code else self.body
        return f"**{self.title}**\n\n{body}"
