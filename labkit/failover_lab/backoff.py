"""Reconnect with backoff: after an error, close the connection, wait (doubling up to a limit), and resolve the
cluster endpoint anew before connecting again.

Resolving anew is what makes the endpoint's move reach the application; the backoff keeps a crowd of clients
from hammering a cluster that is failing over. Until the name moves, a new connection still reaches the old
writer and its writes are refused as read-only: each refusal is one more error and one more, longer, wait.
"""

from __future__ import annotations

from labkit.failover_lab.app import App

FIRST_WAIT, MAX_WAIT = 0.1, 1.6  # seconds: 0.1, 0.2, 0.4, 0.8, 1.6, 1.6, ...


def run(app: App) -> None:
    connection, wait = None, FIRST_WAIT
    while app.running():
        with app.attempt() as attempt:
            connection = connection or app.connect(app.resolve(app.cluster.endpoint))  # DNS asked every time
            app.write(connection)
        if attempt.failed:
            connection = app.close(connection)
            app.pace(wait)
            wait = min(wait * 2, MAX_WAIT)
        else:
            wait = FIRST_WAIT
            app.pace()
    app.close(connection)
