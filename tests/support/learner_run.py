"""What the notebooks do with AWS, in their order, as one function: the learner's whole workbook.

Shared by the policy tests (tests/unit/test_policies.py records the actions it needs under moto's IAM
enforcement) and the ABAC matrix (tests/unit/test_abac_matrix.py runs it as a learner under the strict IAM
evaluator).
"""

from __future__ import annotations

import io
from typing import Any

from labkit.aws.backend import Backend


def workbook(config: Any, backend: Backend) -> int:
    """What the notebooks do with AWS, in their order; returns how many resources verify still finds."""
    import labkit
    from labkit.access.lookup import cluster_identifier, running_instance
    from labkit.access.tunnel.readiness import diagnose
    from labkit.lab.cost import running_cost

    quiet = io.StringIO()
    labkit.preflight(config, backend)  # 00: identity, simulated permissions, quotas, cost
    labkit.plan(config, backend)  # 00
    for stage in ("network", "database", "compute"):  # 01, 02, 03: each stage re-reads the earlier ones
        labkit.apply(config, backend, only=stage, stream=quiet, leave_exercises=True)
        if stage == "network":  # 01's exercises: the learner writes the two rules between the tiers
            labkit.authorize_ingress(config, "sg-db", config.db_port, source_group="sg-app", backend=backend)
            labkit.authorize_egress(config, "sg-app", config.db_port, destination_group="sg-db", backend=backend)
    labkit.security_groups(config, backend)  # 01: rules as tables, the lint
    labkit.lint(config, backend)
    rds, identifier = backend.client("rds"), cluster_identifier(config)  # 02's exercises: read, keep a week of backups
    rds.describe_db_clusters(DBClusterIdentifier=identifier)
    rds.modify_db_cluster(DBClusterIdentifier=identifier, BackupRetentionPeriod=7, ApplyImmediately=True)
    labkit.revoke_rules(config, group="sg-db", port=config.db_port, backend=backend)  # 03: break ...
    verdict = labkit.can_reach("instance", "writer", config.db_port, config, backend=backend)
    assert not verdict.reachable, verdict
    verdict.fixes[0].apply(backend)  # ... and fix
    assert labkit.can_reach("instance", "writer", config.db_port, config, backend=backend).reachable
    labkit.apply(config, backend, stream=quiet)  # a rerun after a kernel restart: nothing to create
    readiness = diagnose(backend, running_instance(backend, config=config))  # 04: before the tunnel
    assert readiness.ready, readiness
    labkit.credentials(config, backend)  # 04: the SQL engines' login
    labkit.endpoints(config, backend)
    labkit.status(config, backend)  # 02, 07: what exists
    running_cost(config, backend)  # 00, 90: what the lab costs per hour
    labkit.destroy(config, backend, stream=quiet)  # 07
    return len(labkit.verify(config, backend))
