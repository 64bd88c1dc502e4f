"""A benchmark whose requests failed must say so: the share that failed, the first error, and its fix.

The harness keeps a failed request as a row with its error text (`ProgrammingError: (code, "Table ...")`),
never as a latency, so a run in which every request failed still has a summary, of NaN percentiles. This
module turns such a run into a LabkitError that names the first error and what to do about it.
"""

from __future__ import annotations

import pandas as pd

from labkit.engines import ACCESS_DENIED, LOST_CONNECTION, NO_SCHEMA, READ_ONLY, Dialect, engine_of
from labkit.errors import LabkitError

MAX_ERROR_SHARE = 0.01  # more than 1% of the measured requests failed: the percentiles describe something else

FIXES = {
    NO_SCHEMA: "create the shop schema first: `labkit schema` (labkit.create_schema() in Python)",
    READ_ONLY: "this target refuses writes: benchmark the insert workload on the writer (--target writer)",
    LOST_CONNECTION: "the connection failed: check the lab answers (`labkit sql 'SELECT 1'`), then retry",
    ACCESS_DENIED: "the login was refused: the managed password may have rotated; run the command again",
}
OTHER_FIX = "see every failed request with --save PATH (the error column of PATH.csv), then retry"


class BenchmarkFailed(LabkitError):
    """More than the allowed share of a benchmark's requests failed."""


def fix_for(error: str, dialect: Dialect | None = None) -> str:
    """The fix for a failed sample, by the engine's code in its error text (the lab engine's dialect by default)."""
    dialect = dialect or engine_of().dialect
    return FIXES.get(dialect.kind(dialect.code_in_text(error)), OTHER_FIX)


def check(samples: pd.DataFrame, max_share: float = MAX_ERROR_SHARE, dialect: Dialect | None = None) -> None:
    """Raise BenchmarkFailed when more than `max_share` of the measured requests failed (warm-up excluded)."""
    measured = samples[~samples["warmup"]] if "warmup" in samples else samples
    failed = measured[measured["error"].notna()]
    if measured.empty or len(failed) <= max_share * len(measured):
        return
    first = str(failed.sort_values("start_s")["error"].iloc[0])
    raise BenchmarkFailed(
        f"{len(failed)} of {len(measured)} requests failed ({len(failed) / len(measured):.0%}); the first: {first}",
        field="benchmark",
        fix=fix_for(first, dialect),
    )
