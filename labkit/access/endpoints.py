"""The lab cluster's endpoints: where a connection for the writer, the readers or one instance goes.

Aurora gives every cluster a cluster (writer) endpoint and a reader endpoint, and every DB instance its own
endpoint. Applications use the first two, so a failover needs no configuration change; the instance
endpoints are for diagnosing one instance.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from labkit.access.lookup import db_instance, lab_cluster
from labkit.aws.backend import Backend
from labkit.aws.tags import cluster_roles
from labkit.config import lab_and_backend
from labkit.engines import default_port


def endpoints(config: Any | None = None, backend: Backend | None = None) -> pd.DataFrame:
    """One row per endpoint of the lab's cluster: what it is for, its host and port, and what is behind it."""
    config, backend = lab_and_backend(config, backend)
    cluster = lab_cluster(config, backend)
    port = int(cluster.get("Port") or default_port(cluster.get("Engine")))
    writer, readers = cluster_roles(cluster)
    rows = [
        {"endpoint": "cluster (writer)", "host": cluster["Endpoint"], "port": port, "behind it": writer or ""},
        {
            "endpoint": "reader",
            "host": cluster["ReaderEndpoint"],
            "port": port,
            "behind it": ", ".join(readers) or writer or "",
        },
    ]
    members = [("writer", writer)] if writer else []
    for role, identifier in members + [("reader", reader) for reader in readers]:
        instance = db_instance(backend, identifier)
        address = instance.get("Endpoint") or {}
        rows.append(
            {
                "endpoint": f"instance ({role})",
                "host": address.get("Address", ""),
                "port": int(address.get("Port") or port),
                "behind it": identifier,
            }
        )
    return pd.DataFrame(rows)
