"""The daemon's signal handlers take no lock (SandboxDaemon.install_signals). Python runs a handler in the main thread
between two of its steps, and the main loop spends its time inside the `wake` Event, whose lock is not reentrant:
the old handlers set Events, so a SIGCHLD arriving while the loop was inside one waited for itself forever. No pass
ran again and `down` had to kill the daemon; `reset` gave up after 60 s, twice in about 200 resets under load."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal, sys
from pathlib import Path
from labkit.sandbox.daemon.main import SandboxDaemon
daemon = SandboxDaemon(Path(sys.argv[1]), 0, "us-east-1")
daemon.install_signals()
for signum, event in ((signal.SIGCHLD, daemon.child_exited), (signal.SIGTERM, daemon.stopping)):
    daemon.wake.clear()
    with daemon.wake._cond:  # the main loop inside the Event (wait() and clear() hold its lock)
        os.kill(os.getpid(), signum)
        for _ in range(200000):  # the interpreter runs the Python-level handler in here, between two steps
            pass
    print(signal.Signals(signum).name, event.wait(10) and daemon.wake.wait(10), flush=True)
"""


def test_a_signal_while_the_main_loop_is_inside_its_event_is_handled_not_a_deadlock(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["SIGCHLD", "True", "SIGTERM", "True"], done.stdout
