"""The workbook's exercises: the learner writes the line that matters, a check reads the live lab.

    labkit.exercise("01.db-ingress", config).check()     pass, or NotYet with what the lab shows
    labkit.exercise("01.db-ingress").hint()              a hint; .hint(2) a bigger one; .solution() the answer
    labkit.your_turn("01.db-ingress")                    the placeholder of a learner's copy (stops Run All)
    labkit.exercises(config)                             every exercise, and which ones this learner has passed

One module of checks per notebook (network, database, compute, sql, benchmark, failover); `base` declares, `checking`
runs. The learner's copies of the notebooks come from labkit.workbook.release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from labkit.workbook.exercises import benchmark, compute, database, failover, network, sql
from labkit.workbook.exercises.base import (
    REGISTRY,
    Exercise,
    LiveLab,
    NotYet,
    Outcome,
    Passed,
    YourTurn,
    find,
    in_order,
    lab_engine,
)
from labkit.workbook.exercises.checking import LabExercise

if TYPE_CHECKING:
    import pandas as pd

    from labkit.aws.backend import Backend

MODULES = (network, database, compute, sql, benchmark, failover)  # the notebooks' order

__all__ = [
    "REGISTRY",
    "Exercise",
    "LabExercise",
    "NotYet",
    "Outcome",
    "Passed",
    "YourTurn",
    "exercise",
    "exercises",
    "in_order",
    "unfinished",
    "your_turn",
]


def exercise(exercise_id: str, config: Any | None = None, backend: Backend | None = None) -> LabExercise:
    """The exercise `exercise_id` on your lab (the saved config unless given): `.check()`, `.hint()`, `.solution()`."""
    return LabExercise(find(exercise_id), config, backend)


def your_turn(exercise_id: str) -> NoReturn:
    """Stop here: this cell is the learner's to write (the placeholder a learner's copy has for a solution)."""
    raise YourTurn(find(exercise_id).for_engine(lab_engine()))


def exercises(config: Any | None = None) -> pd.DataFrame:
    """Every exercise in the workbook's order, and whether this learner's evidence shows it passed on this lab."""
    import pandas as pd  # the table

    from labkit.config import LabConfig  # only the table of exercises reads the config and the evidence
    from labkit.workbook.progress import read_evidence

    config = config if config is not None else LabConfig.load()
    done = {
        e.exercise for e in read_evidence() if e.valid and (e.lab, e.learner) == (config.lab, config.learner)
    }  # fmt: skip
    engine = lab_engine(config)
    rows = [
        {"exercise": e.id, "notebook": e.notebook, "task": e.for_engine(engine).task, "passed": e.id in done}
        for e in in_order()
    ]
    return pd.DataFrame(rows, columns=["exercise", "notebook", "task", "passed"])


def unfinished(notebook: str, config: Any, backend: Backend | None = None, *, before: bool = False) -> list[str]:
    """Each exercise whose lab state is not there, and why: those of `notebook` (its checkpoint), or with
    `before=True` those of earlier notebooks that later ones need (said by a later notebook's first cell).

    Only exercises that build lab state are checked (a question's answer lives in its notebook only)."""

    def wanted(spec: Exercise) -> bool:
        if spec.answers:
            return False
        return spec.notebook < notebook and spec.needed_later if before else spec.notebook == notebook

    lab = LiveLab(config, backend or config.make_backend())  # described once for all of them
    lines = []
    for spec in in_order():
        if wanted(spec):
            outcome = LabExercise(spec, config, backend).evaluate(lab=lab)
            if not outcome.passed:
                first = outcome.problems[0].splitlines()[0]
                lines.append(f"exercise {spec.id} ({spec.notebook}) is not done: {first}")
    return lines
