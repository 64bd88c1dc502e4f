"""What a tunnel goes to: the lab's instance that carries it, and the remote host and port on the far side.

`writer`, `reader`, a DB instance or an endpoint: the database, through the instance. `app`: port 8080 on
the lab's instance itself (the web app). An instance id with a remote port: that port on that instance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from labkit.access.lookup import db_instance, lab_cluster, running_instance
from labkit.aws.backend import Backend
from labkit.engines import default_port
from labkit.errors import ConfigError, LabkitError

APP_PORT = 8080  # the lab's web app on the instance (labkit.app.server)
REMOTE_HOST_DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
INSTANCE_DOCUMENT = "AWS-StartPortForwardingSession"
KEYWORDS = ("writer", "reader")
APP = "app"
# A keyword, an instance or DB instance identifier, or an endpoint: a DNS name's letters, digits, '-' and '.'
TARGET_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True)
class TunnelTarget:
    """`name` as the learner gave it; traffic enters `instance_id` and goes on to `host:port`."""

    name: str
    instance_id: str
    host: str
    port: int

    @property
    def to_instance_itself(self) -> bool:
        return self.host == "localhost"

    @property
    def document(self) -> str:
        return INSTANCE_DOCUMENT if self.to_instance_itself else REMOTE_HOST_DOCUMENT

    def parameters(self, local_port: int) -> dict[str, list[str]]:
        """StartSession parameters, as the AWS CLI sends them (every value a list of strings)."""
        params = {"portNumber": [str(self.port)], "localPortNumber": [str(local_port)]}
        if not self.to_instance_itself:
            params = {"host": [self.host], **params}
        return params

    def describe(self) -> str:
        far = f"port {self.port} on the instance" if self.to_instance_itself else f"{self.host}:{self.port}"
        return f"{self.name}: {far} via {self.instance_id}"


def validate_to(to: str, remote_port: int | None) -> None:
    """Reject a bad target before any AWS call."""
    if not isinstance(to, str) or not to.strip():
        raise ConfigError(
            "tunnel target is empty", field="to", fix="use 'writer', 'reader', 'app', an instance id or an endpoint"
        )
    if not TARGET_PATTERN.fullmatch(to) or ".." in to:
        raise ConfigError(
            f"{to!r} is not a tunnel target",
            field="to",
            fix="use 'writer', 'reader', 'app', a DB instance identifier, an endpoint host name or an instance id",
        )
    if to.startswith("i-") and remote_port is None:
        raise ConfigError(
            f"a tunnel to the instance {to} itself needs the port to reach on it",
            field="remote_port",
            fix="pass remote_port=8080 (the web app) or another port the instance listens on",
        )
    if remote_port is not None and not (isinstance(remote_port, int) and 1 <= remote_port <= 65535):
        raise ConfigError(f"remote_port {remote_port!r} is not a TCP port", field="remote_port", fix="use 1 to 65535")


def resolve_target(to: str, config: Any, backend: Backend, remote_port: int | None = None) -> TunnelTarget:
    """The instance carrying the tunnel and the far end: an endpoint of the lab's cluster, or the instance."""
    validate_to(to, remote_port)
    if to == APP:  # the web app on the lab's instance itself
        return TunnelTarget(to, running_instance(backend, config=config), "localhost", remote_port or APP_PORT)
    if to.startswith("i-"):
        return TunnelTarget(to, running_instance(backend, instance_id=to), "localhost", int(remote_port or 0))
    instance_id = running_instance(backend, config=config)
    host, port = _endpoint(to, config, backend)
    return TunnelTarget(to, instance_id, host, remote_port or port)


def _database_endpoints(backend: Backend) -> dict[str, int]:
    """Every cluster, reader and instance endpoint of the account in this region, with its port."""
    rds = backend.client("rds")
    found: dict[str, int] = {}
    for page in rds.get_paginator("describe_db_clusters").paginate():
        for cluster in page["DBClusters"]:
            port = int(cluster.get("Port") or default_port(cluster.get("Engine")))
            for key in ("Endpoint", "ReaderEndpoint"):
                if cluster.get(key):
                    found[cluster[key]] = port
    for page in rds.get_paginator("describe_db_instances").paginate():
        for instance in page["DBInstances"]:
            endpoint = instance.get("Endpoint") or {}
            if endpoint.get("Address"):
                found[endpoint["Address"]] = int(endpoint.get("Port") or default_port(instance.get("Engine")))
    return found


def _endpoint(to: str, config: Any, backend: Backend) -> tuple[str, int]:
    if to in KEYWORDS:
        cluster = lab_cluster(config, backend)
        key = "Endpoint" if to == "writer" else "ReaderEndpoint"
        return cluster[key], int(cluster.get("Port") or default_port(cluster.get("Engine")))
    if "." in to:  # an endpoint host name: only one of this account's databases (not a tunnel to anywhere)
        known = _database_endpoints(backend)
        if to not in known:
            raise LabkitError(
                f"{to!r} is not an endpoint of a DB cluster or instance of this account and region",
                field="to",
                fix="use 'writer', 'reader', a DB instance identifier, or an endpoint that labkit.endpoints(config) lists",
            )
        return to, known[to]
    try:  # a DB instance identifier
        instance = db_instance(backend, to)
    except ClientError:
        raise LabkitError(
            f"{to!r} is not a DB instance of this account and region",
            field="to",
            fix="use 'writer', 'reader', a DB instance identifier, an endpoint or an EC2 instance id",
        ) from None
    endpoint = instance.get("Endpoint") or {}
    return endpoint.get("Address", ""), int(endpoint.get("Port") or default_port(instance.get("Engine")))
