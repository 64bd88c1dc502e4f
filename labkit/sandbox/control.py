"""Start, stop, inspect and reset the embedded sandbox (the `labkit sandbox ...` commands, also from Python).

Runs in the client: the learner's kernel or the CLI. It starts the daemon as a detached process and then talks
to it only through the state file and the moto server's own admin API (/moto-api/).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from labkit.aws.backend import DEFAULT_REGION, is_loopback_url
from labkit.aws.regions import check_region
from labkit.errors import ConfigError, SandboxError
from labkit.home import labkit_home
from labkit.locks import daemon_lock_path, exclusive, holder_pid, is_held, sandbox_lock_path
from labkit.sandbox.daemon.persist import SnapshotError, check_header, snapshot_path
from labkit.sandbox.engines.base import check_installed
from labkit.sandbox.processes import all_pids, pid_alive, port_in_use, process_args, runs_in_home, terminate
from labkit.sandbox.procs.settings import ENDPOINT_DELAY_ENV, BadSetting, endpoint_delay
from labkit.sandbox.signing import PING_PATH, home_credentials, signed_request
from labkit.sandbox.state import (
    SandboxState,
    is_daemon_of,
    is_running,
    read_state,
    require_running,
    state_path,
)

PORT_ENV = "LABKIT_SANDBOX_PORT"
REGION_ENV = "AWS_DEFAULT_REGION"
# Bounds, not waits: each loop returns as soon as its condition holds, and a dead process is seen at once (its
# exit, a refused connection). They are generous because a busy 2-core machine makes every step slow: a daemon
# that takes 5 s to answer is busy, not gone, and treating it as gone would stop the learner's running sandbox.
START_TIMEOUT = 120.0  # from spawning the daemon to its `ready` state file (about 2 s on an idle machine)
ANSWER_TIMEOUT = 30.0  # for the API of a live daemon to answer one request (milliseconds when idle)
RESET_TIMEOUT = 60.0  # for every database to stop after a reset (seconds when idle)
ENDPOINT_PATTERN = re.compile(r"http://[A-Za-z0-9.:\[\]-]+")  # what the daemon writes: http://127.0.0.1:PORT
LOG_ROTATE_BYTES = 5 * 1024 * 1024  # `up` starts a new sandbox.log beyond this (one previous log is kept)
EXIT_SNAPSHOT = 4  # the daemon's exit code when the saved control plane cannot be loaded (daemon/main.py)
SAVED_DATA = ("instances", "orphans", "databases.json")  # in data/, beside the snapshot: what a reset deletes


def _answers(endpoint_url: str, home: Path) -> bool:
    """True when the moto server at this URL responds to this home's credentials (another home's does not): at once
    when nothing listens, within ANSWER_TIMEOUT when a live daemon is only busy (importing a service's models,
    saving a snapshot, on a loaded machine)."""
    try:
        request = signed_request(f"{endpoint_url}{PING_PATH}", home_credentials(home))
        with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT) as response:
            return response.status == 200
    except OSError:
        return False


def _is_healthy(state: SandboxState, home: Path) -> bool:
    return is_running(state, home) and _answers(state.endpoint_url, home)


def _check_endpoint_delay() -> None:
    try:
        endpoint_delay()
    except BadSetting as exc:
        raise ConfigError(
            str(exc), field=ENDPOINT_DELAY_ENV, fix="set it to a number of seconds from 0 to 600, or unset it"
        ) from None


def _requested_port() -> int:
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
        raise SandboxError(f"{raw!r} is not a port number", field=PORT_ENV, fix="use 1024-65535, or unset it")
    port = int(raw)
    if port_in_use(port):
        raise SandboxError(
            f"port {port} on 127.0.0.1 is already in use",
            field=PORT_ENV,
            fix=f"stop what listens there, choose another port, or unset {PORT_ENV} to pick a free one",
        )
    return port


def _daemons_of(home: Path, state: SandboxState | None) -> list[int]:
    """Every live daemon process of this home: the state file's, the lifetime lock's holder, and any other whose
    command line names this home (one started by an older labkit, or by hand)."""
    candidates = {holder_pid(daemon_lock_path(home))}
    if state is not None:
        candidates.add(state.daemon_pid)
    candidates |= set(all_pids())
    return sorted(
        pid for pid in candidates if pid and pid != os.getpid() and process_args(pid) and is_daemon_of(pid, home)
    )


def _clean_stale(home: Path, state: SandboxState | None) -> None:
    """Stop every daemon of this home and what a dead one left running: its database processes (only ours,
    checked by command line). The data stays: the next daemon starts each database on it again."""
    for pid in _daemons_of(home, state):
        _stop_group(pid)
    if state is not None:
        for instance in state.instances.values():
            pid = instance.get("pid")
            if pid and pid_alive(pid) and runs_in_home(pid, home):
                terminate(pid, grace=5)
    state_path(home).unlink(missing_ok=True)


def _wipe(home: Path) -> None:
    """Delete the saved control plane and every database's data: only for an explicit reset."""
    data = home / "data"
    snapshot_path(home).unlink(missing_ok=True)
    for name in SAVED_DATA:
        target = data / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def _owner_lock(home: Path) -> Any:
    """The home's start/stop lock: a second `up` waits for the first and then reuses its sandbox."""

    def waiting(pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        print(f"another `labkit sandbox up` or `down` for {home} is under way{who}; waiting for it", file=sys.stderr)

    return exclusive(sandbox_lock_path(home), on_wait=waiting)


def _stop_group(pid: int) -> None:
    """Stop the daemon gracefully, then anything left in its process group."""
    terminate(pid, grace=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5  # SIGKILL is not instant: wait until it is gone (and its locks released)
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _region_to_start(region: str | None) -> str:
    """The region a new sandbox reports: `region`, else AWS_DEFAULT_REGION, else us-east-1. Only a real AWS
    region passes: the region ends up in `labkit sandbox env`'s shell exports."""
    if region:
        return check_region(region)
    from_env = os.environ.get(REGION_ENV)
    if from_env:
        return check_region(
            from_env, field=REGION_ENV, fix=f"set {REGION_ENV} to a region code such as us-east-1, or unset it"
        )
    return DEFAULT_REGION


def up(region: str | None = None, quiet: bool = True) -> SandboxState:
    """Start the sandbox, or reuse the running one. Returns its state.

    One owner per home: concurrent calls take turns (a file lock), so the second one reuses what the first started.
    """
    region = _region_to_start(region)  # a bad region is refused before anything starts
    home = labkit_home()
    with _owner_lock(home):
        return _up(home, region, quiet)


def _up(home: Path, region: str, quiet: bool) -> SandboxState:
    existing = read_state(home)
    if existing is not None and _is_healthy(existing, home):
        _announce(existing, quiet)
        return existing
    check_installed()  # the lab's database engine: fail fast, with install steps, before starting anything
    _check_endpoint_delay()  # the daemon's one setting from the environment: refused here, not in its log
    check_header(snapshot_path(home))  # a snapshot this labkit cannot read: say so before starting anything
    port = _requested_port()
    _clean_stale(home, existing)
    if is_held(daemon_lock_path(home)):
        holder = holder_pid(daemon_lock_path(home))
        raise SandboxError(
            f"a sandbox daemon (pid {holder}) that labkit cannot stop still owns {home}",
            field="sandbox",
            fix=f"stop process {holder} by hand, then run `labkit sandbox up` again",
        )
    log_file = _rotated(home / "sandbox.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    env["PYTHONUNBUFFERED"] = "1"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "labkit.sandbox.daemon.main", "--home", str(home), "--port", str(port),
             "--region", region],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env,
            close_fds=True,
        )  # fmt: skip
    from labkit.aws.servicemodels import preload  # boto3: `labkit --help` and `sandbox status` never load it

    preload()  # the models of a lab's first calls, read on the other core while the daemon starts on this one
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state(home)
        if state is not None and state.daemon_pid == process.pid and state.ready:
            _announce(state, quiet)
            return state
        if process.poll() is not None:
            if process.returncode == EXIT_SNAPSHOT:
                raise SnapshotError(
                    f"the saved sandbox in {snapshot_path(home)} cannot be loaded: {_log_tail(log_file, 1)}",
                    field="sandbox snapshot",
                    fix="start empty with `labkit sandbox reset --yes` (this deletes the saved lab and its "
                    "databases), or use the labkit and moto versions that saved it",
                )
            raise SandboxError(
                f"the sandbox daemon exited with code {process.returncode}: {_log_tail(log_file)}",
                field="sandbox",
                fix=f"read {log_file}; then `labkit sandbox down` and `labkit sandbox up`",
            )
        time.sleep(0.02)
    _stop_group(process.pid)
    raise SandboxError(
        f"the sandbox did not start within {START_TIMEOUT:.0f} s", field="sandbox", fix=f"read {log_file}"
    )


def _rotated(log_file: Path, keep_bytes: int = LOG_ROTATE_BYTES) -> Path:
    """Start a new log when the current one is large; the previous one is kept as `sandbox.log.1`."""
    try:
        if log_file.stat().st_size > keep_bytes:
            log_file.replace(log_file.with_name(log_file.name + ".1"))
    except OSError:
        pass  # no log yet (or it cannot be moved): keep appending
    return log_file


def _announce(state: SandboxState, quiet: bool) -> None:
    if not quiet:
        print(state)


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def down(quiet: bool = True, forget: bool = False) -> bool:
    """Stop the sandbox: no daemon of this home, no process and no listening port left behind. Returns True if
    one was running.

    The lab is kept (the AWS resources and every database's data): the next `up` brings it back as it was.
    `forget=True` also deletes them, as `reset` does.
    """
    home = labkit_home()
    with _owner_lock(home):
        state = read_state(home)
        daemons = _daemons_of(home, state)
        if state is None and not daemons:
            _clean_stale(home, None)
            if forget:
                _wipe(home)
            return False
        instances = state.instances.values() if state is not None else []
        ports = [state.port if state is not None else None, *(i.get("port") for i in instances)]
        pids = [*daemons, *(i.get("pid") for i in instances)]
        _clean_stale(home, state)
        leftovers = [p for p in pids if p and pid_alive(p) and runs_in_home(p, home)]
        if is_held(daemon_lock_path(home)):
            leftovers.append(holder_pid(daemon_lock_path(home)))
        listening = [p for p in ports if p and port_in_use(p)]
        if forget and not leftovers:
            _wipe(home)
    if leftovers:
        raise SandboxError(f"processes {leftovers} survived `down`", field="sandbox", fix="kill them by hand")
    if not quiet:
        print("sandbox down" + (f" (ports still in use by other programs: {listening})" if listening else ""))
    return True


def status() -> dict[str, Any]:
    """Whether the sandbox runs, where its API is, and each DB instance's role, endpoint and local port."""
    home = labkit_home(create=False)
    state = read_state(home)
    if state is None or not is_running(state, home):  # a state file left by a crash or a reboot says nothing
        return {"running": False, "home": str(home)}
    return {
        "running": _is_healthy(state, home),
        "home": str(home),
        "endpoint_url": state.endpoint_url,
        "region": state.region,
        "daemon_pid": state.daemon_pid,
        "uptime_seconds": round(time.time() - state.started_at, 1),
        "log_file": state.log_file,
        "instances": {
            name: {k: info.get(k) for k in ("cluster", "role", "status", "endpoint", "port", "pid")}
            for name, info in sorted(state.instances.items())
        },
        "clusters": state.clusters,
    }


def reset(timeout: float = RESET_TIMEOUT) -> None:
    """Wipe the control plane (every AWS resource) and every database: the only way the sandbox deletes a lab.

    A running sandbox is wiped through its API and keeps running; a stopped one (or one whose saved state
    cannot be loaded) has its saved state and data deleted on disk.
    """
    home = labkit_home()
    state = read_state(home)
    if not is_running(state, home):
        with _owner_lock(home):
            if not is_running(read_state(home), home):
                _clean_stale(home, read_state(home))
                _wipe(home)
                return
        state = read_state(home)
    state = require_running(home)
    shutil.rmtree(home / "data" / "orphans", ignore_errors=True)
    request = signed_request(f"{state.endpoint_url}/moto-api/reset", home_credentials(home), "POST")
    urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT).close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = read_state(home)
        if current is not None and not current.instances and not current.clusters:
            return
        time.sleep(0.05)
    raise SandboxError("databases still running after reset", field="sandbox", fix="run `labkit sandbox down`")


def env_exports(region: str | None = None) -> dict[str, str]:
    """Environment variables that point the AWS CLI or any boto3 program at the running sandbox.

    Every value is checked (a real region, a loopback http endpoint): `labkit sandbox env` prints them for a
    shell to eval, and the state file they come from may have been written by an older labkit. The credentials
    are the home's own key pair, named by its 0600 file and profile: the secret itself is never printed."""
    state = require_running()
    restart = "run `labkit sandbox down`, then `labkit sandbox up`"
    if region:
        region = check_region(region)
    else:
        region = check_region(state.region, field=f"the sandbox's region (in {state_path()})", fix=restart)
    endpoint = state.endpoint_url
    if not (isinstance(endpoint, str) and ENDPOINT_PATTERN.fullmatch(endpoint) and is_loopback_url(endpoint)):
        raise SandboxError(
            f"the recorded endpoint {endpoint!r} is not a loopback http address",
            field=f"the sandbox's endpoint (in {state_path()})",
            fix=restart,
        )
    return {
        "AWS_ENDPOINT_URL": endpoint,
        **home_credentials(labkit_home()).for_environment(),  # the home's 0600 file and profile, no secret
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def wait_for_databases(expected: int, timeout: float = START_TIMEOUT) -> SandboxState:
    """Block until `expected` DB instances are running and configured (the reconciler works in the background)."""
    home = labkit_home()
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(home)
        ready = [i for i in (state.instances.values() if state else []) if i.get("status") == "available"]
        if state is not None and len(ready) == expected and len(state.instances) == expected:
            return state
        if time.monotonic() > deadline:
            found = len(ready)
            raise SandboxError(
                f"{found} of {expected} databases ready after {timeout:.0f} s",
                field="sandbox",
                fix=f"see {home / 'sandbox.log'}",
            )
        time.sleep(0.02)
