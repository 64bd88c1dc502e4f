"""EC2 user data that installs the shop app as a systemd service, and the reading of it back.

The script carries the app's source (gzip + base64, so it fits EC2's 16 KB limit), installs the DB-API driver
its engine needs, writes its settings (with its engine's facts, rendered from labkit's engine description) to
/etc/labkit-app.env, and starts `labkit-app.service` on 127.0.0.1:8080 as an unprivileged user. The sandbox
reads the same user data back (`environment_from`, `settings_from` and `source_from`) and runs the source it
carries with that environment, so what the sandbox serves is exactly what an instance would install.

A setting changes later as an operator would change it: `settings_script` rewrites lines of the environment
file and restarts the service. On EC2, Run Command runs it; the sandbox runs the same script on the app's own
environment file, with a restart of its app host in place of systemctl.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import gzip
import json
import re
import shlex
from importlib import resources

from labkit.app.server import BadSettings, EngineFacts, Settings
from labkit.engines import AuroraEngine, engine_of

ENV_MARKER = "LABKIT_APP_ENV"
ENV_FILE = "/etc/labkit-app.env"
RESTART = "systemctl restart labkit-app.service"
SOURCE_MARKER = "LABKIT_APP_SOURCE"
USER_DATA_LIMIT = 16384  # bytes, before base64 (EC2's limit)
PACKAGES = ("boto3>=1.28",)  # besides the engine's DB-API driver
CA_FILE = "/etc/labkit-rds-ca.pem"  # AWS's RDS CA bundle on the instance
CA_BUNDLE = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"  # = labkit.aws.truststore's

SCRIPT = """\
#!/bin/bash
# labkit: install the lab's shop app (labkit.app.server) as a systemd service on 127.0.0.1:{port}.
set -euo pipefail
exec > >(tee -a /var/log/labkit-app-install.log) 2>&1
dnf install -y -q python3-pip
python3 -m pip install --quiet {packages}
# the RDS certificate authorities: the app verifies the database's certificate and name with them
curl -fsS --retry 5 --max-time 60 -o {ca_file} {ca_bundle}
chmod 0644 {ca_file}
id labkit-app >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin labkit-app
install -d -m 0755 /opt/labkit
base64 -d <<'{source_marker}' | gunzip > /opt/labkit/shop_app.py
{source}
{source_marker}
cat > {env_file} <<'{env_marker}'
{env}
{env_marker}
cat > /etc/systemd/system/labkit-app.service <<'UNIT'
[Unit]
Description=labkit lab shop (web app on Aurora)
Wants=network-online.target
After=network-online.target

[Service]
EnvironmentFile={env_file}
ExecStart=/usr/bin/python3 /opt/labkit/shop_app.py
User=labkit-app
Restart=always
RestartSec=5
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now labkit-app.service
"""


def app_source() -> str:
    """The app's source, as installed on the instance."""
    return (resources.files("labkit.app") / "server.py").read_text(encoding="utf-8")


def shipped_source() -> str:
    """The app's source as the user data carries it: the same program without its comments (ast.unparse), so it
    fits EC2's 16 KB of user data with the lines that install it; the notebooks show app_source(), comments and all."""
    return ast.unparse(ast.parse(app_source())) + "\n"


def engine_setting(engine: AuroraEngine) -> str:
    """Settings.engine for an app on a cluster of `engine`: its facts as compact JSON (LABKIT_APP_ENGINE)."""
    return json.dumps(engine.app_facts(), sort_keys=True, separators=(",", ":"))


def app_environment(settings: Settings) -> dict[str, str]:
    return {
        "LABKIT_APP_CLUSTER": settings.cluster,
        "LABKIT_APP_REGION": settings.region,
        "AWS_DEFAULT_REGION": settings.region,
        "LABKIT_APP_DATABASE": settings.database,
        "LABKIT_APP_BIND": settings.bind,
        "LABKIT_APP_PORT": str(settings.port),
        "LABKIT_APP_ENGINE": settings.engine,
        "LABKIT_APP_READS_FROM": settings.reads_from,
        "LABKIT_APP_CA_FILE": settings.ca_file,
    }


def environment_text(env: dict[str, str]) -> str:
    """KEY=value lines, each value shell-quoted (systemd's EnvironmentFile reads the same quoting)."""
    return "\n".join(f"{key}={shlex.quote(value)}" for key, value in env.items())


def environment_from(text: str) -> dict[str, str]:
    """The KEY=value lines of an environment file (blank lines and comments skipped)."""
    env = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = (shlex.split(value) or [""])[0]
    return env


def settings_script(changes: dict[str, str], env_file: str = ENV_FILE, restart: str = RESTART) -> str:
    """A shell script that sets `changes` in the app's environment file (other lines kept) and restarts it."""
    unknown = sorted(set(changes) - set(app_environment(Settings(cluster="c", region="r"))))
    if unknown:
        raise ValueError(f"not an app setting: {', '.join(unknown)}")
    keys = "|".join(sorted(changes))
    return "\n".join(
        [
            "set -euo pipefail",
            f"env_file={shlex.quote(env_file)}",
            'new=$(mktemp "$env_file.XXXXXX")',
            "trap 'rm -f \"$new\"' EXIT",
            f'grep -v -E \'^({keys})=\' "$env_file" > "$new" || true',
            f"cat >> \"$new\" <<'{ENV_MARKER}'",
            environment_text(changes),
            ENV_MARKER,
            'cat "$new" > "$env_file"  # in place: the file keeps its owner and mode',
            restart,
        ]
    )


def render(settings: Settings) -> str:
    """The user data script for an instance serving the app for `settings.cluster` (on its engine: the lab's
    when the settings name none)."""
    if not settings.engine:
        settings = dataclasses.replace(settings, engine=engine_setting(engine_of()))
    if not settings.ca_file:
        settings = dataclasses.replace(settings, ca_file=CA_FILE)
    packed = base64.encodebytes(gzip.compress(shipped_source().encode("utf-8"), mtime=0)).decode("ascii").strip()
    packages = (EngineFacts.from_json(settings.engine).driver["requirement"], *PACKAGES)
    script = SCRIPT.format(
        port=settings.port, packages=shlex.join(packages), source=packed, source_marker=SOURCE_MARKER,
        ca_file=shlex.quote(settings.ca_file), ca_bundle=shlex.quote(CA_BUNDLE),
        env=environment_text(app_environment(settings)), env_marker=ENV_MARKER, env_file=ENV_FILE,
    )  # fmt: skip
    if len(script.encode()) > USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(script.encode())} bytes, over EC2's {USER_DATA_LIMIT}")
    return script


def _block(user_data: str, marker: str) -> str | None:
    found = re.search(rf"<<'{marker}'[^\n]*\n(.*?)\n{marker}\n", user_data, re.S)
    return found.group(1) if found else None


def environment_block(user_data: str) -> str | None:
    """The environment file a user data script writes (None: the instance does not run the app)."""
    return _block(user_data, ENV_MARKER)


def settings_from(user_data: str) -> Settings | None:
    """The app settings a user data script carries (None: the instance does not run the app, or could not: a
    setting the app refuses stops it on the instance too)."""
    block = environment_block(user_data)
    try:
        return Settings.from_env(environment_from(block)) if block is not None else None
    except BadSettings:
        return None


def source_from(user_data: str) -> str | None:
    """The app source a user data script installs."""
    block = _block(user_data, SOURCE_MARKER)
    return gzip.decompress(base64.b64decode(block)).decode("utf-8") if block is not None else None
