"""Port-forwarding through the lab's instance with Session Manager (SSM): no public database, no SSH.

tunnel("writer")      a Tunnel (context manager, or .open()/.close()) to the cluster endpoint
diagnose(backend, id) why Session Manager can or cannot reach an instance, check by check
readiness(config)     the same for the lab's instance (in readiness.py, the module of that name)
"""

from __future__ import annotations

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
from labkit.aws.patience import TunnelTiming

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
    "resolve_target",
    "tunnel",
    "wait_until_online",
]
