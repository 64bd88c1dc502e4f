"""06_failover's exercises: read the comparison the learner measured, which strategy wrote again first after the
writer crash, and which one a demoted writer refused most, and why.

Both answers are checked against the learner's own `labkit.failover_lab` result (run on this lab: its writers
are this cluster's instances), never against a figure written in advance: on a loaded machine or another engine
the order can change, and the check follows the measurement. A tie counts for every strategy in it.
"""

from __future__ import annotations

import math
from typing import Any

from labkit.workbook.exercises.base import LiveLab, Outcome, exercise_check, not_yet, passed

NOTEBOOK = "06_failover"
DOWNTIME, REFUSED = "write downtime (s)", "errors: read-only"
TIE_SECONDS = 0.01  # the table's rounding: strategies this close count as one
REASONS = {  # why each strategy's writes reach a demoted writer: the reason a learner names, and whose it is
    "cached address": "naive",  # it reconnects to the address it resolved at start, the old writer's
    "pooled connection": "pool",  # pre-ping succeeds on a live connection to the demoted writer until recycled
    "stale DNS answer": "backoff",  # it resolves anew, but inside the TTL the endpoint still names the old writer
    "held connection": "topology",  # its one open connection to the old writer's instance, until the first refusal
}


def _column(
    lab: LiveLab, failovers: Any, failure: str, column: str, answer: Any, what: str
) -> tuple[Any, Outcome | None]:
    """One column of the learner's comparison for `failure` (a value per strategy), or what is wrong with the
    comparison passed or with the strategy named in `answer`."""
    if not hasattr(failovers, "table") or not hasattr(failovers, "runs"):
        return None, not_yet("pass the result labkit.failover_lab returned: .check(answer, failovers)")
    members = {m["DBInstanceIdentifier"] for m in lab.cluster["DBClusterMembers"]}
    if not set(failovers.runs["writer_before"]) <= members:
        return None, not_yet("that comparison ran on another cluster: run labkit.failover_lab on this lab")
    table = failovers.table()
    if failure not in table.index.get_level_values("failure"):
        return None, not_yet(f"that comparison has no {failure!r} failure: run it with the three failures")
    rows = table.loc[failure]
    if not isinstance(answer, str) or answer not in rows.index:
        return None, not_yet(f"{what} is {answer!r}: write one of {', '.join(repr(s) for s in rows.index)}")
    return rows[column], None


@exercise_check(
    "06.first",
    notebook=NOTEBOOK,
    task="From your table, which strategy wrote again first after the writer crash? Put its name in `first`.",
    hints=(
        "The crash rows of `failovers.table()` have each strategy's `write downtime (s)`: the longest stretch "
        "without an acknowledged write. The smallest one wrote again first.",
        '`failovers.table().loc["crash", "write downtime (s)"]` is one number per strategy; `.idxmin()` names the '
        "smallest.",
    ),
    solution='first = failovers.table().loc["crash", "write downtime (s)"].idxmin()',
    answers=("first", "failovers"),
)
def first(lab: LiveLab, answer: Any, failovers: Any) -> Outcome:
    downtime, wrong = _column(lab, failovers, "crash", DOWNTIME, answer, "first")
    if wrong:
        return wrong
    best = float(downtime.min())
    if math.isnan(float(downtime[answer])) or float(downtime[answer]) > best + TIE_SECONDS:
        return not_yet(
            f"{answer} went {float(downtime[answer]):.2f} s without an acknowledged write, "
            f"{downtime.idxmin()} only {best:.2f} s: read the {DOWNTIME!r} column again"
        )
    return passed(
        f"after the writer crash, {answer} wrote again first: {best:.2f} s without an acknowledged write",
        {"cluster": lab.cluster["DBClusterIdentifier"], "first": answer},
        note="what did each of the others wait for: a DNS answer, a pool's recycle, a backoff, an instance?",
    )


@exercise_check(
    "06.why",
    notebook=NOTEBOOK,
    task=(
        "After the planned failover, which strategy's writes were refused most as read-only (`refused`), and why "
        f"(`reason`, one of {', '.join(repr(r) for r in REASONS)})?"
    ),
    hints=(
        "Only a demoted writer refuses a write as read-only: the strategy that kept reaching the old writer longest "
        "has the most `errors: read-only` in the planned rows. Then ask how it got there: an address kept from the "
        "start, a pooled connection, a fresh but stale DNS answer, or a connection it was holding.",
        '`failovers.table().loc["planned", "errors: read-only"].idxmax()` names it; read its loop in '
        "labkit/failover_lab/ (naive.py, pool.py, backoff.py, topology.py) for the reason.",
    ),
    solution=(
        'refused = failovers.table().loc["planned", "errors: read-only"].idxmax()\n'
        'reason = {"naive": "cached address", "pool": "pooled connection", "backoff": "stale DNS answer", '
        '"topology": "held connection"}[refused]'
    ),
    answers=("refused", "reason", "failovers"),
)
def why(lab: LiveLab, refused: Any, reason: Any, failovers: Any) -> Outcome:
    counts, wrong = _column(lab, failovers, "planned", REFUSED, refused, "refused")
    if wrong:
        return wrong
    most = float(counts.max())
    if most == 0:
        return not_yet("no write was refused as read-only in that planned failover: run labkit.failover_lab again")
    if float(counts[refused]) < most:
        return not_yet(f"{refused} had {counts[refused]:.0f} writes refused as read-only, {counts.idxmax()} "
                       f"{most:.0f}: read the {REFUSED!r} column again")  # fmt: skip
    if reason not in REASONS:
        return not_yet(f"reason is {reason!r}: write one of {', '.join(repr(r) for r in REASONS)}")
    if REASONS[reason] != refused:
        return not_yet(f"{reason!r} is how {REASONS[reason]} reaches the old writer, not {refused}: read "
                       f"labkit/failover_lab/{refused}.py")  # fmt: skip
    return passed(
        f"after the planned failover, {refused} had {most:.0f} writes refused as read-only: its {reason}",
        {"cluster": lab.cluster["DBClusterIdentifier"], "refused": refused, "reason": reason},
    )
