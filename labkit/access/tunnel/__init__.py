"""Port-forwarding through the lab's instance with Session Manager (SSM): no public database, no SSH.

tunnel("writer")      a Tunnel (context manager, or .open()/.close()) to the cluster endpoint
diagnose(backend, id) why Session Manager can or cannot reach an instance, check by check
"""

from __future__ import annotations

from typing import Any

from labkit.access.lookup import running_instance
from labkit.access.tunnel.readiness import Check, Readiness, diagnose
from labkit.access.tunnel.session import (
    PLUGIN_INSTALL,
    Tunnel,
    close_all,
    find_open,
    local_port_free,
    open_tunnels,
    tunnel,
    wait_until_online,
)
from labkit.access.tunnel.target import TunnelTarget, resolve_target
from labkit.aws.backend import Backend
from labkit.aws.patience import TunnelTiming
from labkit.config import lab_and_backend


def readiness(config: Any | None = None, backend: Backend | None = None) -> Readiness:
    """Session Manager readiness of the lab's instance (see `diagnose`)."""
    config, backend = lab_and_backend(config, backend)
    return diagnose(backend, running_instance(backend, config=config))


__all__ = [
    "PLUGIN_INSTALL",
    "Check",
    "Readiness",
    "Tunnel",
    "TunnelTarget",
    "TunnelTiming",
    "close_all",
    "diagnose",
    "find_open",
    "local_port_free",
    "open_tunnels",
    "readiness",
    "resolve_target",
    "tunnel",
    "wait_until_online",
]
