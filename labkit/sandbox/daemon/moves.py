"""When a cluster endpoint follows a new writer: some seconds after the promotion, as Aurora's DNS does.

On Aurora the cluster endpoint is a DNS name (5-second TTL) that is repointed after the promotion: a client that
resolves it in between, or cached the old answer, reaches the old writer, which refuses its writes as read-only
once it is demoted (see procs/settings.py for the source and the setting). The reconciler knows the writer at
once; this records, per cluster, which instance the endpoint still names and the wall-clock time it moves, and
the state file carries both: every resolver (dns.py, in the client, the session plugin and the app hosts) then
compares that time with its own clock, so no state file has to be written at the moment of the move.

Runs in the daemon, called by the reconciler's snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Pointer:
    instance: str  # what the endpoint names until `moves_at`
    moving_to: str  # ... and from then on
    moves_at: float  # wall-clock seconds (time.time()): the resolvers are other processes


class EndpointMoves:
    """Per cluster, the instance its endpoint names and when it moves to the writer; `delay` s after each change."""

    def __init__(self, delay: float, clock: Callable[[], float] = time.time) -> None:
        self.delay = delay
        self.clock = clock
        self._pointers: dict[str, _Pointer] = {}

    def follow(self, cluster: str, writer: str | None) -> dict[str, object]:
        """The state file's fields for the cluster endpoint now that `writer` is the cluster's writer: the instance
        it names until `endpoint_moves_at` (`endpoint_writer`), after which it names `writer`. A writer of None (its
        server restarting in place) moves nothing: the endpoint keeps naming the instance it named."""
        now = self.clock()
        pointer = self._pointers.get(cluster)
        if writer is not None:
            if pointer is None:  # the first writer a cluster has (or a restarted daemon's): no old one to reach
                pointer = self._pointers[cluster] = _Pointer(writer, writer, now)
            elif writer != pointer.moving_to:
                if now >= pointer.moves_at:  # the last move is done: this one starts from where it went
                    pointer.instance = pointer.moving_to
                pointer.moving_to, pointer.moves_at = writer, now + self.delay
        if pointer is None:
            return {}
        if now >= pointer.moves_at:
            pointer.instance = pointer.moving_to
        if pointer.instance == pointer.moving_to:
            return {}
        return {"endpoint_writer": pointer.instance, "endpoint_moves_at": pointer.moves_at}

    def forget(self, keep: set[str]) -> None:
        """Drop the clusters that are gone."""
        for cluster in [c for c in self._pointers if c not in keep]:
            del self._pointers[cluster]
