"""The instructor's side: every learner's lab at a glance, a safe reset, and a quota check before class.

- `class_status()`: each learner's lab resources across regions with state, age and cost per hour;
- `class_reset()`: a dry run by default; with `yes=True`, deletes the chosen learners' labs (and only
  resources tagged with that lab and learner) in dependency order, then verifies and writes a report;
- `class_check(n)`: do n labs fit in the account's quotas, and what to change when they do not;
- `class_progress()`: which exercises each learner passed and when, verified, from their homes' signed evidence
  or the tags their checks left on their labs; `.write_csv()` for a gradebook;
- `class_setup()`: an account administrator's one-time setup: every policy labkit ships, and the instructor's;
- `learners_create / learners_list / learners_delete`: onboard a class (one tagged IAM user per learner, a
  0600 credentials file each) and remove it once its labs are gone.
"""

from __future__ import annotations

from labkit.classroom.learners import LearnersReport, learners_create, learners_delete, learners_list
from labkit.classroom.progress import ClassProgress, class_progress
from labkit.classroom.quotas import class_check
from labkit.classroom.reset import ResetReport, class_reset
from labkit.classroom.scan import parse_age
from labkit.classroom.setup import SetupReport, class_setup
from labkit.classroom.status import ClassStatus, class_status
from labkit.lab.quotas import QuotaReport

__all__ = [
    "ClassProgress",
    "ClassStatus",
    "LearnersReport",
    "QuotaReport",
    "ResetReport",
    "SetupReport",
    "class_check",
    "class_progress",
    "class_reset",
    "class_setup",
    "class_status",
    "learners_create",
    "learners_delete",
    "learners_list",
    "parse_age",
]
