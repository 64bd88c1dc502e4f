"""Fault injection: every step of apply fails once; destroy still leaves nothing, and apply still completes.

By default each step fails at its create call in the harshest way: AWS makes the resource (tagged) but
the reply is lost, so apply neither knows its id nor finished configuring it. LABKIT_FAULTS=all fails
every changing call of apply instead, both refused and with the reply lost (slower; about a minute).
"""

from __future__ import annotations

import os

import pytest
from support.faults import MODES, FaultInjector, FaultPoint

from labkit.aws.patience import Timing
from labkit.config import LabConfig
from labkit.display import QuietProgress
from labkit.lab.apply import StepsFailed, apply
from labkit.lab.destroy import destroy
from labkit.lab.plan import plan

FULL_LAB = LabConfig(readers=1, key_pair=True, ssh_cidr="203.0.113.7")
FAST = Timing(poll_seconds=0.01, retry_attempts=4, retry_first_delay=0.01, retry_max_delay=0.02)


def quietly(action, *args, **kwargs):
    return action(
        *args, progress=QuietProgress("test", 0), stream=open(os.devnull, "w"), timing=FAST, max_workers=8, **kwargs
    )


def fault_plan(points: list[FaultPoint]) -> list[tuple[FaultPoint, str]]:
    """Which faults to inject: one per step by default, every call in both modes with LABKIT_FAULTS=all."""
    if os.environ.get("LABKIT_FAULTS") == "all":
        return [(point, mode) for point in points for mode in MODES]
    first_call = {}
    for point in points:
        first_call.setdefault(point.step, point)
    return [(point, "reply lost") for point in first_call.values()]


def fails_at(backend, injector: FaultInjector, point: FaultPoint, mode: str) -> list[str]:
    """Apply with one fault armed; it must fail, at that fault."""
    injector.arm(point, mode)
    try:
        quietly(apply, FULL_LAB, backend)
        problems = ["apply did not fail"]
    except StepsFailed as exc:
        problems = [] if injector.fired else [f"apply failed on its own: {exc.message}"]
    injector.disarm()
    return problems


def survives(backend, injector: FaultInjector, point: FaultPoint, mode: str) -> list[str]:
    """After the fault, destroy leaves nothing; after it again, a second apply completes the lab."""
    problems = fails_at(backend, injector, point, mode)
    remaining = quietly(destroy, FULL_LAB, backend)
    if not remaining.empty:
        problems.append(f"destroy left {list(remaining['id'])}")
    problems += fails_at(backend, injector, point, mode)
    quietly(apply, FULL_LAB, backend)
    after = plan(FULL_LAB, backend)
    if not after.nothing_to_do:
        problems.append(f"the second apply left work: {[s.node for s in after.changes]}")
    if after.duplicates:
        problems.append(f"duplicates: {after.duplicates}")
    if backend.strict.refusals:
        problems.append(f"strict layer refused {backend.strict.refusals}")
    return problems


def test_every_step_of_apply_survives_a_failure(strict_backend, capsys):
    injector = FaultInjector(strict_backend.session())
    injector.record()
    quietly(apply, FULL_LAB, strict_backend)
    points = injector.stop_recording()
    assert quietly(destroy, FULL_LAB, strict_backend).empty
    steps = {point.step for point in points}
    assert len(steps) == 17, "every node of the full lab is a step with at least one changing call"

    failures: dict[str, list[str]] = {}
    faults = fault_plan(points)
    for point, mode in faults:
        # A clean account for each fault (destroying a complete lab is tested elsewhere); it also drops the
        # terminated instances and their interfaces that moto, unlike AWS, keeps and slows down with.
        strict_backend.reset_account()
        strict_backend.strict.refusals.clear()
        problems = survives(strict_backend, injector, point, mode)
        if problems:
            failures[f"{point} ({mode})"] = problems
    survived = len(faults) - len(failures)
    with capsys.disabled():
        print(f"\nfault points survived: {survived}/{len(faults)} ({len(steps)} steps, {len(points)} changing calls)")
    assert failures == {}


@pytest.mark.parametrize("mode", MODES)
def test_a_fault_in_one_branch_lets_running_steps_finish_and_resume_picks_up(strict_backend, mode):
    injector = FaultInjector(strict_backend.session())
    injector.arm(FaultPoint("instance-profile", "AddRoleToInstanceProfile", 1), mode)
    with pytest.raises(StepsFailed) as caught:
        quietly(apply, FULL_LAB, strict_backend)
    assert caught.value.field == "instance-profile"
    assert "resumes where it stopped" in caught.value.fix
    injector.disarm()
    before = plan(FULL_LAB, strict_backend)
    assert before.step("instance").action == "create"
    assert before.step("instance-profile").action == ("none" if mode == "reply lost" else "complete")
    result = quietly(apply, FULL_LAB, strict_backend)
    assert "instance" in result.created and "vpc" not in result.created
