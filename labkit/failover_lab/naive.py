"""Naive: one long-lived connection; after an error, reconnect to the address resolved at start.

Many applications resolve the database's name once (a connection string turned into an address at start-up, a
DNS cache that ignores the TTL, a JVM that caches forever). After a failover that address is the old writer's:
the reconnection succeeds, and every write is refused as read-only, for as long as the process runs.
"""

from __future__ import annotations

from labkit.failover_lab.app import App


def run(app: App) -> None:
    address = app.resolve(app.cluster.endpoint)  # resolved once, kept for the life of the process
    connection = None
    while app.running():
        with app.attempt() as attempt:
            connection = connection or app.connect(address)
            app.write(connection)
        if attempt.failed:
            connection = app.close(connection)  # the next write reconnects, to the same address
        app.pace()
    app.close(connection)
