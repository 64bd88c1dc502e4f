"""Run the app source an instance's user data carries, as that instance, inside the sandbox.

The supervisor (apps.py) starts this with the extracted source file. It loads that file as a module,
takes its settings from the environment file the same user data writes (read by the source's own
`Settings.from_env`, as systemd's EnvironmentFile hands it to the service), and serves it on the given local port with `dial` set to the
sandbox's network for the instance, so the app's database connections obey the security groups. The AWS
API calls the app makes (describe its cluster, read its secret) go to the sandbox through AWS_ENDPOINT_URL.

Runs as its own process, one per running lab instance with the app, started (and stopped) by the daemon.

    python -m labkit.sandbox.procs.apphost --source F --user-data U --instance i-... --region R --endpoint URL --port P
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

from labkit.app.userdata import environment_from
from labkit.aws.backend import is_loopback_url
from labkit.sandbox.peers import owner_only
from labkit.sandbox.vpc.lean import LeanBackend
from labkit.sandbox.vpc.network import InstanceNetwork


def load_source(path: Path) -> ModuleType:
    """The app source as a module named `shop_app`, as the instance's service would import it."""
    spec = importlib.util.spec_from_file_location("shop_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit-sandbox-apphost")
    for name in ("--source", "--user-data", "--instance", "--region", "--endpoint"):
        parser.add_argument(name, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    if not is_loopback_url(args.endpoint):
        parser.error(f"the sandbox app host only talks to a loopback endpoint, not {args.endpoint}")
    environment = environment_from(Path(args.user_data).read_text())
    if environment is None:
        parser.error(f"{args.user_data} does not install the lab's app")
    app = load_source(Path(args.source))
    network = InstanceNetwork(LeanBackend(args.region, endpoint=args.endpoint), args.instance)  # lighter per app
    settings = app.Settings.from_env({**environment, "LABKIT_APP_BIND": "127.0.0.1"})
    # On an instance only Session Manager reaches the app's port; here it is a port on a shared machine's
    # loopback, so only the lab owner's own processes (their tunnel) may connect: socketserver closes the rest.
    app.ThreadingServer.verify_request = lambda server, request, address: owner_only(request)
    app.serve(settings, dial=network.dial, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
