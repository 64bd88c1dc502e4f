"""The one-machine hub's JupyterHub configuration, as code (deploy/jupyterhub/jupyterhub_config.py calls it).

- Sign-in: PAM, admitting the `labkit-learners` group only (the accounts `labkit class hub-learners create`
  makes) and the instructors named as admins; a hub user whose account is gone is dropped at start.
- Servers: LocalProcessSpawner, each learner's server running as their own system account from the hub's
  shared, read-only venv (singleuser.py prepares their LABKIT home and notebooks); when it stops, for whatever
  reason, the post-stop hook stops their sandbox and every process of theirs (cleanup.py).
- jupyterhub-idle-culler as a hub-managed service with only the scopes it needs: an idle server is stopped
  (and with it the sandbox) after `cull_timeout` seconds.
- An instructor service whose token (a 0600 file in the hub's state folder) lets `labkit class hub-learners`
  add and remove hub users while the hub runs.
- Loopback by default: the proxy's public port on 127.0.0.1 unless told otherwise; the hub's own API and the
  proxy's API on 127.0.0.1 always.

Settings come from LABKIT_HUB_* environment variables, which the launcher (launch.py) sets.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.hub.learners import GROUP

ENV_PREFIX = "LABKIT_HUB_"
INSTRUCTOR_SERVICE = "labkit-instructor"
CULLER_SERVICE = "idle-culler"
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]  # the culler's README
INSTRUCTOR_SCOPES = ["admin:users", "admin:servers", "list:users", "read:users", "tokens", "access:servers"]


@dataclass
class HubSettings:
    """Where the hub listens and keeps its state, and how it culls."""

    state_dir: Path
    proxy_command: str
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 8081
    proxy_api_port: int = 8001
    cull_timeout: int = 3600  # seconds without activity before a server is stopped
    cull_every: int = 300
    admins: list[str] = field(default_factory=list)

    def to_env(self) -> dict[str, str]:
        return {
            f"{ENV_PREFIX}STATE_DIR": str(self.state_dir), f"{ENV_PREFIX}PROXY_COMMAND": self.proxy_command,
            f"{ENV_PREFIX}IP": self.ip, f"{ENV_PREFIX}PORT": str(self.port), f"{ENV_PREFIX}HUB_PORT": str(self.hub_port),
            f"{ENV_PREFIX}PROXY_API_PORT": str(self.proxy_api_port), f"{ENV_PREFIX}CULL_TIMEOUT": str(self.cull_timeout),
            f"{ENV_PREFIX}CULL_EVERY": str(self.cull_every), f"{ENV_PREFIX}ADMINS": ",".join(self.admins),
        }  # fmt: skip

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HubSettings:
        env = dict(os.environ if environ is None else environ)

        def get(name: str, default: str = "") -> str:
            return env.get(ENV_PREFIX + name, default)

        if not get("STATE_DIR"):
            raise SystemExit("labkit hub: start it with `make hub` (LABKIT_HUB_STATE_DIR is not set)")
        return cls(
            state_dir=Path(get("STATE_DIR")), proxy_command=get("PROXY_COMMAND", "configurable-http-proxy"),
            ip=get("IP", "127.0.0.1"), port=int(get("PORT", "8000")), hub_port=int(get("HUB_PORT", "8081")),
            proxy_api_port=int(get("PROXY_API_PORT", "8001")), cull_timeout=int(get("CULL_TIMEOUT", "3600")),
            cull_every=int(get("CULL_EVERY", "300")), admins=[a for a in get("ADMINS").split(",") if a],
        )  # fmt: skip

    @property
    def public_url(self) -> str:
        host = "127.0.0.1" if self.ip in ("", "0.0.0.0", "::") else self.ip
        return f"http://{host}:{self.port}/"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/api"


def instructor_token(state_dir: Path) -> str:
    """The instructor service's API token: made once, kept in a 0600 file of the hub's state folder."""
    path = state_dir / "instructor.token"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_text().strip()


def configure(c: Any, settings: HubSettings) -> None:
    """Fill JupyterHub's config object `c`."""
    from labkit.hub.cleanup import post_stop_hook  # the hub's process sweep: only the running hub needs it

    state = settings.state_dir
    c.JupyterHub.ip = settings.ip
    c.JupyterHub.port = settings.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_port
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = [settings.proxy_command]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True  # the hub stopping stops every server (and the hook, every sandbox)

    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.allowed_groups = {GROUP}
    c.Authenticator.admin_users = set(settings.admins)
    c.Authenticator.delete_invalid_users = True  # an account deleted while the hub was down leaves no hub user

    c.JupyterHub.spawner_class = "localprocess"
    c.Spawner.cmd = [sys.executable, "-m", "labkit.hub.singleuser"]
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 90  # a loaded machine: the first import of JupyterLab takes a while
    c.Spawner.post_stop_hook = post_stop_hook
    c.LocalProcessSpawner.interrupt_timeout = 20  # the server shuts its kernels down on SIGINT

    c.JupyterHub.services = [
        {
            "name": CULLER_SERVICE,
            "command": [
                sys.executable,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={settings.cull_timeout}",
                f"--cull-every={settings.cull_every}",
            ],
        },
        {"name": INSTRUCTOR_SERVICE, "api_token": instructor_token(state)},
    ]
    c.JupyterHub.load_roles = [
        {"name": "labkit-idle-culler", "scopes": CULLER_SCOPES, "services": [CULLER_SERVICE]},
        {"name": "labkit-instructor", "scopes": INSTRUCTOR_SCOPES, "services": [INSTRUCTOR_SERVICE]},
    ]
