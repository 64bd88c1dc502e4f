"""How long to wait for things, per backend: the sandbox answers at once, AWS takes minutes.

Each Backend carries one of each as an attribute (`backend.timing`, `backend.tunnel_timing`,
`backend.app_timing`); tests pass faster ones explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Polls and retries while provisioning (apply, destroy, reset)."""

    poll_seconds: float | None  # None: each boto3 waiter's own delay
    retry_attempts: int
    retry_first_delay: float
    retry_max_delay: float


@dataclass(frozen=True)
class TunnelTiming:
    """How long each stage of opening a Session Manager tunnel may take."""

    online_timeout: float  # for the SSM agent to register after every check passes
    connect_timeout: float  # for start_session to stop answering TargetNotConnected
    open_timeout: float  # for the plugin to report its port
    first_delay: float
    max_delay: float


@dataclass(frozen=True)
class AppTiming:
    """How long the lab's web app may take to answer after its tunnel opens, and how often to ask."""

    start_timeout: float
    poll_seconds: float
