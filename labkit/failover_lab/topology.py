"""Topology-aware: know the cluster's instances, ask them which one takes writes, and connect to that one's own
endpoint, never through the cluster endpoint.

The instance endpoints come from the RDS API once (DescribeDBClusters, DescribeDBInstances: what AWS's drivers
with a failover plugin learn from the cluster's topology tables). After an error the application asks each
instance whether it is read-only (the engine's identity query) and reconnects to the one that is not: it does
not wait for DNS to move, only for the promotion.
"""

from __future__ import annotations

from typing import Any

from labkit.failover_lab.app import App, NoWriter


def run(app: App) -> None:
    connection = None
    while app.running():
        with app.attempt() as attempt:
            connection = connection or app.connect(app.resolve(find_writer(app)))
            app.write(connection)
        if attempt.failed:
            connection = app.close(connection)
        app.pace()
    app.close(connection)


def find_writer(app: App) -> str:
    """The endpoint of the instance that says it takes writes."""
    for endpoint in app.cluster.instance_endpoints.values():
        connection: Any = None
        try:
            connection = app.connect(app.resolve(endpoint))
            if not app.identity(connection)[1]:
                return endpoint
        except app.errors:
            continue  # restarting, or unreachable: ask the next one
        finally:
            app.close(connection)
    raise NoWriter("no instance of the cluster takes writes yet")
