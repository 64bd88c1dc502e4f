"""Who is a learner on a one-machine hub: a member of the learners' group with an ordinary uid.

Every step that stops, sweeps or deletes an account asks `is_learner` first (accounts.py, cleanup.py), so
anyone else's account (root, a service, a colleague) is never touched; the hub admits only this group.

Runs in the hub (root) and in the instructor's `labkit` command.
"""

from __future__ import annotations

import grp
import pwd

GROUP = "labkit-learners"  # the hub admits this group only (jupyterhub_config: allowed_groups)


def is_learner(name: str) -> bool:
    """True when `name` is an account `labkit class hub-learners create` made (a member of the learners' group, an ordinary uid)."""
    try:
        account = pwd.getpwnam(name)
        members = grp.getgrnam(GROUP).gr_mem
    except KeyError:
        return False
    return name in members and account.pw_uid >= 1000


def learners() -> list[str]:
    """Every learner account on this machine."""
    try:
        return sorted(name for name in grp.getgrnam(GROUP).gr_mem if is_learner(name))
    except KeyError:
        return []
