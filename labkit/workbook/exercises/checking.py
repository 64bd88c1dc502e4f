"""An exercise bound to the learner's lab: check it against the live lab, ask for a hint, see the solution.

A passed check leaves signed evidence in the learner's labkit home (labkit.workbook.progress), which an instructor
can collect; a failed one raises `NotYet` with what the lab shows, so Run All stops there.
"""

from __future__ import annotations

from typing import Any

from labkit.errors import ConfigError, LabkitError
from labkit.workbook.exercises.base import (
    REGISTRY,
    Exercise,
    LiveLab,
    Note,
    NotYet,
    Outcome,
    Passed,
    how_to_ask,
    not_yet,
)

_passed_here: dict[tuple[str, str, str], Outcome] = {}  # (lab, learner, exercise) -> its last pass in this process


def last_passed(config: Any, exercise_id: str) -> Outcome | None:
    """The outcome of the last passed check of `exercise_id` on this lab in this process (e.g. a prediction)."""
    return _passed_here.get((config.lab, config.learner, exercise_id))


class LabExercise:
    """One exercise on one lab: `.check(...)`, `.hint()`, `.hint(2)`, `.solution()`; shows its task."""

    def __init__(self, exercise: Exercise, config: Any | None = None, backend: Any | None = None) -> None:
        self.exercise = exercise
        self._config = config
        self._backend = backend

    @property
    def id(self) -> str:
        return self.exercise.id

    def _lab(self) -> LiveLab:
        from labkit.config import lab_and_backend  # the saved config, read when a check runs

        config, backend = lab_and_backend(self._config, self._backend)
        return LiveLab(config, backend)

    def evaluate(self, *answers: Any, lab: LiveLab | None = None) -> Outcome:
        """Run the check without recording or raising: the outcome, passed or with its problems (`lab`: a lab
        already described, shared by several checks)."""
        spec = self.exercise
        if len(answers) > len(spec.answers):
            raise ConfigError(
                f"{spec.id}'s check takes {len(spec.answers)} value(s), not {len(answers)}",
                field="answers",
                fix=f".check({', '.join(spec.answers)})" if spec.answers else ".check() reads the lab itself",
            )
        if len(answers) < len(spec.answers):
            return not_yet(f"give the check your {' and '.join(spec.answers)}: .check({', '.join(spec.answers)})")
        lab = lab or self._lab()
        try:
            for need in spec.needs:
                before = REGISTRY[need]
                found = before.check(lab) if not before.answers else None
                if found is not None and not found.passed:
                    return not_yet(f"this builds on {need}, which is not done yet: {found.problems[0].splitlines()[0]}")
            return spec.check(lab, *answers)
        except LabkitError as exc:  # the lab is not there yet (no cluster, no tunnel): say so, as not yet
            return not_yet(exc.message + (f" (fix: {exc.fix})" if exc.fix else ""))

    def check(self, *answers: Any) -> Passed:
        """Pass (and keep signed evidence in the learner's home), or raise NotYet with what the lab shows."""
        outcome = self.evaluate(*answers)
        if not outcome.passed:
            raise NotYet(self.exercise, outcome.problems)
        from labkit.workbook.progress import record  # a failed write or tag only prints a line: the pass stands

        lab = self._lab()
        record(
            lab.config, self.id, notebook=self.exercise.notebook, checked=outcome.checked, resources=outcome.resources,
            backend=lab.backend,
        )  # fmt: skip
        _passed_here[(lab.config.lab, lab.config.learner, self.id)] = outcome
        return Passed(self.exercise, outcome)

    def hint(self, level: int = 1) -> Note:
        """Hint `level` (1: a nudge, 2: a bigger one); `.solution()` after that."""
        hints = self.exercise.hints
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= len(hints):
            raise ConfigError(
                f"{self.id} has hints 1 to {len(hints)}, not {level!r}",
                field="level",
                fix=f'.hint(1) or .hint({len(hints)}); labkit.exercise("{self.id}").solution() shows the answer',
            )
        more = f" (a bigger one: .hint({level + 1}))" if level < len(hints) else " (the answer: .solution())"
        return Note(f"{self.id}, hint {level} of {len(hints)}{more}", hints[level - 1])

    def solution(self) -> Note:
        """The line the solved notebook runs."""
        return Note(f"{self.id}, a solution", self.exercise.solution, code=True)

    def __repr__(self) -> str:
        return f"{self.id} ({self.exercise.notebook}): {self.exercise.task}\n  {how_to_ask(self.id)}"

    def _repr_markdown_(self) -> str:
        check = f".check({', '.join(self.exercise.answers)})"
        return (
            f"**{self.id}** ({self.exercise.notebook}): {self.exercise.task}\n\n"
            f"Check it with `{check}`; hints: `.hint()`, `.hint(2)`, and `.solution()`."
        )
