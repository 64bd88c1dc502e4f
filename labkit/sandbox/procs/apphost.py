"""Run the app source an instance's user data carries, as that instance, inside the sandbox.

The supervisor (apps.py) starts this with the extracted source file. It loads that file as a module and
serves it on the given local port with `dial` set to the sandbox's network for the instance, so the app's
database connections obey the security groups. The AWS API calls the app makes (describe its cluster, read
its secret) go to the sandbox through AWS_ENDPOINT_URL.

The app's settings come from its environment file, which stands for the instance's /etc/labkit-app.env: on
the first start it is written from the user data, as the user data writes it on EC2; later a settings script
(labkit.app.userdata.settings_script) may change lines of it. SIGHUP restarts the app with the file as it is
then (the process execs itself: same pid, same port), as `systemctl restart` does on the instance.

Runs as its own process, one per running lab instance with the app, started (and stopped) by the daemon.

    python -m labkit.sandbox.procs.apphost --source F --user-data U --instance i-... --region R --endpoint URL --port P
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from labkit.app.userdata import environment_block, environment_from
from labkit.aws.backend import is_loopback_url
from labkit.home import labkit_home
from labkit.sandbox.peers import owner_only
from labkit.sandbox.procs.settings import ENV_FILE_NAME
from labkit.sandbox.tls import ca_file
from labkit.sandbox.vpc.lean import LeanBackend
from labkit.sandbox.vpc.network import InstanceNetwork
from labkit.sandbox.vpc.relay import relay_tcp


def environment_file(source: Path) -> Path:
    """The app's environment file, in the app's folder (the instance's disk)."""
    return source.parent / ENV_FILE_NAME


def load_source(path: Path) -> ModuleType:
    """The app source as a module named `shop_app`, as the instance's service would import it."""
    spec = importlib.util.spec_from_file_location("shop_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def first_environment(env_file: Path, user_data: str) -> None:
    """Write the environment file from the user data, unless it exists (it outlives a stop and a start)."""
    block = environment_block(user_data)
    if block is None or env_file.exists():
        return
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(block + "\n")


def restart_on_hangup(signum: int, frame: Any) -> None:
    """`systemctl restart`: the same command again, which reads the environment file again."""
    logging.getLogger("shop").info("SIGHUP: restarting with the settings in %s", ENV_FILE_NAME)
    logging.shutdown()
    os.execv(sys.executable, sys.orig_argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit-sandbox-apphost")
    for name in ("--source", "--user-data", "--instance", "--region", "--endpoint"):
        parser.add_argument(name, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    if not is_loopback_url(args.endpoint):
        parser.error(f"the sandbox app host only talks to a loopback endpoint, not {args.endpoint}")
    source = Path(args.source)
    env_file = environment_file(source)
    first_environment(env_file, Path(args.user_data).read_text())
    if not env_file.exists():
        parser.error(f"{args.user_data} does not install the lab's app")
    app = load_source(source)
    try:  # the app parses its own settings, as it does on the instance
        settings = app.Settings.from_env(environment_from(env_file.read_text()))
    except Exception as exc:
        print(f"shop: {exc}", file=sys.stderr)
        return 1
    network = InstanceNetwork(LeanBackend(args.region, endpoint=args.endpoint), args.instance)  # lighter per app
    signal.signal(signal.SIGHUP, restart_on_hangup)
    # On an instance only Session Manager reaches the app's port; here it is a port on a shared machine's
    # loopback, so only the lab owner's own processes (their tunnel) may connect: socketserver closes the rest.
    app.ThreadingServer.verify_request = lambda server, request, address: owner_only(request)
    # The servers' certificates are signed by the home's own CA, not AWS's (labkit.sandbox.tls)
    trusted = str(ca_file(labkit_home() / "data"))
    local = app.Settings(**{**settings.__dict__, "bind": "127.0.0.1", "ca_file": trusted})
    app.serve(local, dial=network.dial, port=args.port, relay=relay_tcp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
