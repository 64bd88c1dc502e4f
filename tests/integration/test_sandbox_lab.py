"""The whole lab against a real sandbox: apply gives a real writer and reader, destroy leaves none."""

from __future__ import annotations

import io
import time

from labkit import sandbox
from labkit.config import LabConfig
from labkit.home import labkit_home
from labkit.lab.apply import apply
from labkit.lab.destroy import destroy
from labkit.sandbox.processes import pid_alive
from labkit.sandbox.state import read_state
from labkit.security import can_reach


def test_apply_then_destroy_drives_the_databases(sandbox_backend):
    config = LabConfig(learner="integration")
    apply(config, sandbox_backend, stream=io.StringIO())
    state = sandbox.wait_for_databases(2)
    roles = sorted(info["role"] for info in state.instances.values())
    assert roles == ["reader", "writer"]
    assert can_reach("instance", "writer", 3306, config, sandbox_backend).reachable
    pids = [info["pid"] for info in state.instances.values()]
    remaining = destroy(config, sandbox_backend, stream=io.StringIO())
    assert remaining.empty
    sandbox.wait_for_databases(0)
    assert read_state().instances == {}
    assert not any(pid_alive(pid) for pid in pids)
    apps = labkit_home() / "apps"
    deadline = time.monotonic() + 60  # the app supervisor forgets a terminated instance's app on its next pass
    while any(apps.glob("i-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(apps.glob("i-*")), "the app folder of a terminated instance is left behind"
