"""Before a class: do N labs fit in the account's quotas in this region?

The arithmetic (limits from the best source, usage, what one lab needs, the advice) is the lab's own
(labkit.lab.quotas), which a learner's preflight also runs for one lab; this is the instructor's entry point.
"""

from __future__ import annotations

from labkit.aws.backend import Backend
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.quotas import QuotaReport, quota_report


def class_check(learners: int, config: LabConfig | None = None, backend: Backend | None = None) -> QuotaReport:
    """Compare what `learners` labs of `config` need with the quotas of the account in its region."""
    if isinstance(learners, bool) or not isinstance(learners, int) or learners < 1:
        raise ConfigError(
            f"must be a whole number of learners, 1 or more; got {learners!r}", field="learners", fix="e.g. 20"
        )
    config = config or LabConfig.load()
    backend = backend or config.make_backend()
    return quota_report(learners, config, backend)
