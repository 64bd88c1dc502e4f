"""`labkit tunnel` and `labkit sql`: the database from a terminal, through Session Manager.

`labkit tunnel writer` holds a port-forward open until Ctrl-C and says how to connect a client.
The password is not printed: a credentials file in the format of the engine's own client (mode 0600, deleted
when the tunnel closes; labkit.engines says which client and which format) holds it, and the AWS CLI command
that reads the secret is shown for other tools.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import signal
import time
from pathlib import Path
from typing import Any

import labkit
from labkit.cli import options
from labkit.cli.exits import EXIT_BAD_INPUT, handles_errors
from labkit.cli.options import config_from_args, lab_flags, tcp_port
from labkit.engines import ENGINES, AuroraEngine, default_engine
from labkit.errors import LabkitError
from labkit.home import labkit_home


def sweep_option_files(folder: Path) -> None:
    """Delete credentials files left by a tunnel that was killed (nothing listens on their port any more)."""
    from labkit.access.tunnel import local_port_free  # start-up time: the tunnel package loads boto3

    for suffix in sorted({engine.client.credentials_suffix for engine in ENGINES.values()}):
        for stale in folder.glob(f"*-*{suffix}"):
            port = stale.stem.rpartition("-")[2]
            if port.isdigit() and local_port_free(int(port)):
                with contextlib.suppress(OSError):
                    stale.unlink()


def option_file(home: Path, tunnel: Any, credentials: Any, database: str, engine: AuroraEngine | None = None) -> Path:
    """The engine client's credentials file for this tunnel, readable only by its owner (stale ones are swept
    first)."""
    from labkit.access.tls import tunnel_verification  # start-up time: the access layer loads boto3

    client = (engine or default_engine()).client
    ca_file, server_name = tunnel_verification(tunnel)  # the client verifies the server as labkit does
    folder = home / "tunnels"
    folder.mkdir(parents=True, exist_ok=True)
    sweep_option_files(folder)
    name = f"{re.sub(r'[^A-Za-z0-9.-]', '_', tunnel.to).lstrip('.')}-{tunnel.port}{client.credentials_suffix}"
    path = folder / name  # stays in folder
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            client.credentials.format(
                host=tunnel.host, port=tunnel.port, user=credentials.username, password=credentials.password,
                database=database, ca=ca_file, server_name=server_name,
            )
        )  # fmt: skip
    return path


def connect_help(
    tunnel: Any, credentials: Any, backend: Any, database: str, options: Path, engine: AuroraEngine | None = None
) -> str:
    """How to connect a client through the tunnel, without the password itself."""
    client = (engine or default_engine()).client
    trust = backend.trust_store()
    command = client.command.format(
        path=shlex.quote(str(options)), host=tunnel.host, port=tunnel.port, user=credentials.username,
        database=database,
    )  # fmt: skip
    fetch = ["aws", "secretsmanager", "get-secret-value", "--secret-id", credentials.secret_arn]
    fetch += ["--query", "SecretString", "--output", "text", "--region", backend.region]
    if backend.endpoint_url():
        fetch += ["--endpoint-url", backend.endpoint_url()]
    return "\n".join(
        [
            f"tunnel open: {tunnel.address} -> {tunnel.target.describe()}",
            f"  host     {tunnel.host}",
            f"  port     {tunnel.port}",
            f"  user     {credentials.username}",
            f"  database {database}",
            f"  password in Secrets Manager: {credentials.secret_arn}",
            f"  TLS      on; the client verifies {client.verifies} against {trust}"
            if client.verifies
            else "  TLS      on",
            "connect:",
            f"  {command}      (the file is deleted on close)",
            f"  the password, for other clients: {shlex.join(fetch)}",
            "Press Ctrl-C to close the tunnel.",
        ]
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM closes the tunnel the way Ctrl-C does


@handles_errors(failed=EXIT_BAD_INPUT)
def _tunnel(args: argparse.Namespace) -> int:
    from labkit.access.tunnel import Tunnel  # start-up time: the tunnel package loads boto3
    from labkit.lab.resources.database import DATABASE_NAME  # start-up time: the resources load boto3

    config = config_from_args(args)
    backend = options.backend_for(config)
    tunnel = Tunnel(args.to, args.port, remote_port=args.remote_port, config=config, backend=backend)
    signal.signal(signal.SIGTERM, _interrupt)
    # It says "Press Ctrl-C": Ctrl-C must work even when started with SIGINT ignored, as a script's or make's
    # background job starts its commands (Python then leaves it ignored, and the tunnel could not be closed).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    option_path: Path | None = None
    try:
        tunnel.open()
        if tunnel.target and tunnel.target.to_instance_itself:
            link = f"\nopen http://{tunnel.address}/ in your browser" if args.to == "app" else ""
            print(
                f"tunnel open: {tunnel.address} -> {tunnel.target.describe()}{link}\nPress Ctrl-C to close the tunnel."
            )
        else:
            secret = labkit.credentials(config, backend)
            from labkit.access.lookup import cluster_engine  # start-up time: boto3, as above

            engine = cluster_engine(config, backend)
            option_path = option_file(labkit_home(), tunnel, secret, DATABASE_NAME, engine)
            print(connect_help(tunnel, secret, backend, DATABASE_NAME, option_path, engine), flush=True)
        while tunnel.is_open:
            time.sleep(0.5)
        print("the session plugin stopped; the tunnel is closed")
        return 1
    except KeyboardInterrupt:
        print("\nclosing the tunnel")
        return 0
    finally:
        tunnel.close()
        if option_path is not None:
            with contextlib.suppress(OSError):
                option_path.unlink()


# labkit.sql's fixes name its Python arguments; here the same advice names the flags.
CLI_WORDING = {"on='writer'": "--on writer", "on='reader'": "--on reader"}


@handles_errors(failed=EXIT_BAD_INPUT)
def _sql(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        frame = labkit.sql(args.query, on=args.on, config=config)
    except LabkitError as exc:
        exc.fix = _as_flags(exc.fix)
        raise
    finally:
        labkit.close_engines()
    print(frame.to_string(index=False))
    return 0


def _as_flags(fix: str | None) -> str | None:
    for python, flag in CLI_WORDING.items():
        fix = fix.replace(python, flag) if fix else fix
    return fix


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tunnel` and `sql` subcommands."""
    flags = lab_flags()
    tunnel = subparsers.add_parser(
        "tunnel", parents=[flags], help="hold a Session Manager port-forward open (writer, reader, app or an instance)"
    )
    tunnel.add_argument(
        "to", help="writer, reader, app (the web app), a DB instance, an endpoint, or an EC2 instance id"
    )
    tunnel.add_argument("--port", type=tcp_port, default=None, help="local port (default: a free one)")
    tunnel.add_argument(
        "--remote-port", type=tcp_port, default=None, help="port on the far side (an instance id needs one)"
    )
    tunnel.set_defaults(handler=_tunnel)

    query = subparsers.add_parser("sql", parents=[flags], help="run one SQL statement and print the result table")
    query.add_argument("query", help="the SQL statement")
    query.add_argument("--on", default="writer", help="writer (default), reader, or a DB instance identifier")
    query.set_defaults(handler=_sql)
