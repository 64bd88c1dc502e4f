"""05_benchmark's exercises: predict before measuring, read the confidence interval, and find the writer after
a failover.

The prediction is kept before anything is measured (its evidence carries the time); the interval is read against
the comparison the learner measured on this lab; the writer is what RDS names now and what the cluster endpoint
answers now.
"""

from __future__ import annotations

import math
from typing import Any

from labkit.aws.tags import cluster_roles
from labkit.workbook.exercises.base import LiveLab, Outcome, exercise_check, not_yet, passed
from labkit.workbook.exercises.checking import last_passed
from labkit.workbook.exercises.sql import whoami_row

NOTEBOOK = "05_benchmark"
CHOICES = ("writer is faster", "writer is slower", "no practical difference")


@exercise_check(
    "05.predict",
    notebook=NOTEBOOK,
    task=f"Before measuring, predict a point select's median on the writer against the reader: one of {', '.join(repr(c) for c in CHOICES)}.",
    hints=(
        "Both are instances of the same class with the same data; the reader only applies changes it receives. "
        "Which would you expect to answer a read by primary key faster, and by more than 10%?",
        'Any of the three is a fair prediction; write it as text, e.g. `prediction = "writer is slower"`. The '
        "measurement below tells you whether you were right.",
    ),
    solution='prediction = "no practical difference"',
    answers=("prediction",),
)
def predict(lab: LiveLab, prediction: Any) -> Outcome:
    choice = prediction.strip().lower() if isinstance(prediction, str) else None
    if choice not in CHOICES:
        return not_yet(f"prediction is {prediction!r}: write one of {', '.join(repr(c) for c in CHOICES)}")
    writer, readers = cluster_roles(lab.cluster)
    if not writer or not readers:
        return not_yet("the cluster needs a writer and a reader to compare (notebook 02 builds them)")
    return passed(
        f"predicted before measuring: {choice}",
        {"cluster": lab.cluster["DBClusterIdentifier"], "writer": writer, "reader": readers[0], "prediction": choice},
        note="the next cells measure it",
    )


@exercise_check(
    "05.interval",
    notebook=NOTEBOOK,
    task="Read the 95% interval: is all of it inside plus or minus the threshold? Put True or False in `inside`.",
    hints=(
        "`comparison.difference()` has one row: the interval's ends (`ci95_low_us`, `ci95_high_us`) and the "
        "threshold (`threshold_us`). No practical difference means the whole interval lies between -threshold "
        "and +threshold.",
        'Take the three numbers from the row (`comparison.difference().iloc[0][["ci95_low_us", "ci95_high_us", '
        '"threshold_us"]]`) and compare: `-limit <= low and high <= limit`.',
    ),
    solution=(
        'low, high, limit = comparison.difference().iloc[0][["ci95_low_us", "ci95_high_us", "threshold_us"]]\n'
        "inside = bool(-limit <= low and high <= limit)"
    ),
    answers=("inside", "comparison"),
)
def interval(lab: LiveLab, inside: Any, comparison: Any) -> Outcome:
    import numpy as np  # the measurement's numbers

    if not hasattr(comparison, "difference") or not hasattr(comparison, "arms"):
        return not_yet("pass the comparison labkit.compare measured: .check(inside, comparison)")
    targets = [target for target, _ in comparison.arms[:2]]
    if targets != ["writer", "reader"] or comparison.metadata.get("backend") != lab.backend.name:
        return not_yet(f"that comparison is of {targets} on {comparison.metadata.get('backend')}: measure the writer "
                       "against the reader of this lab with labkit.compare")  # fmt: skip
    row = comparison.difference().iloc[0]
    low, high, limit = (float(row[k]) for k in ("ci95_low_us", "ci95_high_us", "threshold_us"))
    if any(math.isnan(x) for x in (low, high, limit)):
        return not_yet("the comparison measured nothing usable: run labkit.compare again")
    expected = -limit <= low and high <= limit
    if not isinstance(inside, bool | int | np.bool_):  # numpy's bool: what a comparison of pandas values gives
        return not_yet(f"inside is {inside!r}: write True or False")
    if bool(inside) != expected:
        where = "inside" if expected else "not all inside"
        return not_yet(
            f"inside is {inside!r}, but the interval {low:.1f} to {high:.1f} us is {where} +/- {limit:.1f} us"
        )
    guess = last_passed(lab.config, "05.predict")
    said = guess.resources.get("prediction") if guess else None
    note = f"you predicted {said!r}; the measurement says {row['verdict']!r}" if said else ""
    return passed(
        f"read the interval {low:.1f} to {high:.1f} us against +/- {limit:.1f} us: {row['verdict']}",
        {"cluster": lab.cluster["DBClusterIdentifier"]},
        note=note,
    )


@exercise_check(
    "05.new-writer",
    notebook=NOTEBOOK,
    task="After the failover, prove which instance the cluster endpoint reaches now: `labkit.whoami`, into `answered`.",
    hints=(
        "The cluster (writer) endpoint kept its name; ask it who answers, with a new connection.",
        '`answered = labkit.whoami("writer", config=config)`: compare its `instance` with `report.writer_before`.',
    ),
    solution='answered = labkit.whoami("writer", config=config)',
    answers=("answered",),
)
def new_writer(lab: LiveLab, answer: Any) -> Outcome:
    from labkit.access.sql import whoami  # the cluster endpoint, asked now by the check itself

    row, wrong = whoami_row(answer, "writer")
    if wrong:
        return wrong
    writer, _ = cluster_roles(lab.cluster)
    if row["instance"] != writer or bool(row["read_only"]):
        return not_yet(f"{row['instance']} answered, but RDS names {writer} the writer now: ask again")
    now = whoami("writer", config=lab.config, backend=lab.backend).iloc[0]
    if now["instance"] != writer:
        return not_yet(f"the cluster endpoint now leads to {now['instance']}, while RDS names {writer} the writer")
    return passed(
        f"the cluster endpoint reaches {writer}, the writer RDS names now, and it accepts writes",
        {"cluster": lab.cluster["DBClusterIdentifier"], "writer": writer},
    )
