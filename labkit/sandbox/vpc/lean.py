"""A sandbox backend for the processes that only check connections: one boto3 session, read-only models.

Every tunnel runs a session plugin (procs/session_plugin.py) that describes the account's rules with the
reachability engine; each is a process of its own, so what its boto3 clients hold is paid per tunnel. Two
things made that about 90 MB: each client came from its own session (so each loaded botocore's 1.2 MB endpoint
table again), and each loaded its service's whole model (EC2's is some 700 operations). `LeanBackend` makes
every client from one session whose data path puts first a copy of the EC2, RDS and SSM models that holds
only what these processes call: every Describe operation (a snapshot of the rules only ever describes) and
TerminateSession, with the shapes they use and without documentation. botocore still builds and parses every
request from AWS's own model, so the calls and answers are exactly what the full model gives.

Runs in the session plugins and the app hosts (the processes that check connections), never in the daemon.

The trimmed models are made once per LABKIT home and botocore version, in a child process (so the full models
never sit in a plugin's memory), and reused by every later tunnel:

    python -m labkit.sandbox.vpc.lean DIR      # writes DIR/<service>/<api version>/service-2.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.session

from labkit.home import labkit_home
from labkit.sandbox.backend import SandboxBackend
from labkit.sandbox.signing import home_credentials

# What the session plugin and the app hosts call: the reachability snapshot's describes, the session checks.
EXTRA_OPERATIONS = {"ssm": ("TerminateSession",)}
SERVICES = ("ec2", "rds", "ssm")


def models_dir(home: Path | None = None) -> Path:
    """Where this botocore version's trimmed models live in the LABKIT home."""
    return (home or labkit_home()) / "cache" / f"botocore-{botocore.__version__}-read-only-models"


def ensure_models(home: Path | None = None) -> Path | None:
    """The trimmed models' folder, made first (in a child process) when missing; None when it cannot be made
    (a full or read-only home): botocore's own models then serve, as they did before, at their memory cost."""
    target = models_dir(home)
    if target.is_dir():
        return target
    made = subprocess.run(
        [sys.executable, "-m", "labkit.sandbox.vpc.lean", str(target)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )  # fmt: skip
    if made.returncode != 0 or not target.is_dir():
        last = (made.stderr.strip().splitlines() or ["no output"])[-1]
        sys.stderr.write(f"labkit: using botocore's full models; cannot write {target}: {last}\n")
        return None
    return target


class LeanBackend(SandboxBackend):
    """SandboxBackend with every client from one session that loads the trimmed models (see the module doc)."""

    def __init__(self, region: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(region, endpoint)
        self._session: boto3.Session | None = None
        self._session_lock = threading.Lock()  # not the base class's: `client()` calls this while holding that

    def session(self) -> boto3.Session:
        with self._session_lock:
            if self._session is None:
                core = botocore.session.get_session()
                models = ensure_models()
                if models is not None:
                    core.set_config_variable("data_path", str(models))  # searched before botocore's own
                credentials = home_credentials(labkit_home()).for_boto3()
                self._session = boto3.Session(botocore_session=core, region_name=self.region, **credentials)
            return self._session


def trimmed(model: dict[str, Any], operations: set[str]) -> dict[str, Any]:
    """The service model with only `operations`, the shapes they reach, and no documentation strings."""
    kept = {name: model["operations"][name] for name in sorted(operations)}
    roots = [op[key]["shape"] for op in kept.values() for key in ("input", "output") if key in op]
    roots += [error["shape"] for op in kept.values() for error in op.get("errors", [])]
    shapes: dict[str, Any] = {}
    while roots:
        name = roots.pop()
        if name in shapes:
            continue
        shape = shapes[name] = model["shapes"][name]
        roots += [shape[key]["shape"] for key in ("member", "key", "value") if key in shape]
        roots += [member["shape"] for member in shape.get("members", {}).values()]
    return _without_docs({**model, "operations": kept, "shapes": shapes})


def _without_docs(value: Any) -> Any:
    if isinstance(value, dict):  # a documentation string, never a member that happens to be named so
        return {k: _without_docs(v) for k, v in value.items() if not (k == "documentation" and isinstance(v, str))}
    if isinstance(value, list):
        return [_without_docs(v) for v in value]
    return value


def write_models(target: Path) -> None:
    """Write the trimmed models to `target` all at once (a rename), so a concurrent writer cannot mix them."""
    loader = botocore.session.get_session().get_component("data_loader")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".models-", dir=target.parent))
    try:
        for service in SERVICES:
            version = loader.determine_latest_version(service, "service-2")
            model = loader.load_service_model(service, "service-2", version)
            wanted = {n for n in model["operations"] if n.startswith("Describe")} | set(
                EXTRA_OPERATIONS.get(service, ())
            )
            folder = staging / service / version
            folder.mkdir(parents=True)
            (folder / "service-2.json").write_text(json.dumps(trimmed(model, wanted)))
            # The model above has botocore's SDK extras merged in already; an empty extras file here shadows
            # botocore's, whose additions name shapes the trimmed model no longer has.
            (folder / "service-2.sdk-extras.json").write_text(json.dumps({"version": 1.0, "merge": {}}))
        try:
            os.rename(staging, target)
        except OSError:  # another process made them first: theirs are the same
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    write_models(Path(sys.argv[1]))
