"""Change a setting of a sandbox instance's web app, as Run Command changes it on EC2 (client side).

The very script that runs on an instance (labkit.app.userdata.settings_script) runs here with bash, on the
app's environment file in the sandbox (the instance's /etc/labkit-app.env), and restarts the app host with
SIGHUP in place of `systemctl restart`: the process execs itself and reads the file again (procs/apphost.py).

Runs in the client: the learner's kernel or the CLI (through SandboxBackend.restart_app).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from labkit.app.userdata import settings_script
from labkit.errors import LabkitError
from labkit.home import labkit_home
from labkit.sandbox.processes import port_in_use, process_args
from labkit.sandbox.procs.settings import ENV_FILE_NAME
from labkit.sandbox.state import require_running

LISTEN_TIMEOUT = 15.0  # seconds for a starting app to listen before its settings can change


def restart_app(instance_id: str, changes: dict[str, str], home: Path | None = None) -> None:
    """Set `changes` in the app's environment file of `instance_id` and restart its app host."""
    home = home or labkit_home()
    app = _listening_app(instance_id, home)
    env_file = home / "apps" / instance_id / ENV_FILE_NAME
    if not env_file.exists():
        raise LabkitError(
            f"the web app of {instance_id} has no settings file yet ({env_file})",
            field="instance",
            fix="wait until labkit.web_app(config) answers, then try again",
        )
    script = settings_script(changes, str(env_file), f"kill -HUP {int(app['pid'])}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise LabkitError(
            f"changing the web app's settings on {instance_id} failed: {done.stderr.strip()[-300:]}",
            field="instance",
            fix=f"look at the app's log, {app.get('log_file')}",
        )


def _listening_app(instance_id: str, home: Path) -> dict:
    """The state file's entry for the instance's app, once its app host listens (its SIGHUP handler is set by
    then, so the signal restarts it rather than ending it)."""
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while True:
        app = require_running(home).apps.get(instance_id)
        if app is None or app.get("status") == "failed":
            raise LabkitError(
                f"no web app runs for {instance_id} in the sandbox"
                + (f": {app.get('error')}" if app and app.get("error") else ""),
                field="instance",
                fix="start the lab's instance (labkit.apply(config, only='compute')), then try again",
            )
        args = process_args(int(app["pid"]))
        ours = not args or instance_id in args  # without /proc (macOS) the state file's pid is taken at its word
        if ours and app.get("status") == "running" and port_in_use(int(app["port"])):
            return app
        if time.monotonic() > deadline:
            raise LabkitError(
                f"the web app of {instance_id} did not start listening within {LISTEN_TIMEOUT:.0f} s",
                field="instance",
                fix=f"look at the app's log, {app.get('log_file')}",
            )
        time.sleep(0.1)
