"""02_database's exercises: read the cluster through the RDS API, and change one setting that matters.

Both checks describe the cluster as RDS has it now: the reader endpoint it names, the backup retention it keeps.
"""

from __future__ import annotations

from typing import Any

from labkit.aws.tags import cluster_roles
from labkit.workbook.exercises.base import LiveLab, Outcome, exercise_check, not_yet, passed

NOTEBOOK = "02_database"
BACKUP_DAYS = 7


def _host(value: Any) -> str:
    return value.strip().lower().rstrip(".") if isinstance(value, str) else ""


@exercise_check(
    "02.reader-endpoint",
    notebook=NOTEBOOK,
    task="Find the cluster's reader endpoint with the RDS API: put its host name in `reader_endpoint`.",
    hints=(
        "`rds.describe_db_clusters(DBClusterIdentifier=...)` describes one cluster; the apply cell's `result.ids` "
        'maps each part of the lab to its id (`result.ids["cluster"]`).',
        'The answer is a field of `["DBClusters"][0]`: the cluster has an `Endpoint` (the writer) and a '
        "`ReaderEndpoint`.",
    ),
    solution='reader_endpoint = rds.describe_db_clusters(DBClusterIdentifier=result.ids["cluster"])["DBClusters"][0]["ReaderEndpoint"]',
    answers=("reader_endpoint",),
)
def reader_endpoint(lab: LiveLab, answer: Any) -> Outcome:
    cluster = lab.cluster
    wanted, given = _host(cluster.get("ReaderEndpoint")), _host(answer)
    if not isinstance(answer, str):
        return not_yet(f"reader_endpoint is {type(answer).__name__}, not a host name: take the string RDS returns")
    if given == wanted:
        return passed(
            f"{answer.strip()} is the reader endpoint of cluster {cluster['DBClusterIdentifier']}, as RDS names it",
            {"cluster": cluster["DBClusterIdentifier"], "reader_endpoint": wanted},
        )
    if given == _host(cluster.get("Endpoint")):
        return not_yet(f"{answer} is the cluster (writer) endpoint: it always leads to the writer, not the readers")
    writer, readers = cluster_roles(cluster)
    for identifier in (writer, *readers):
        if identifier and given.startswith(identifier.lower() + "."):
            return not_yet(
                f"{answer} is the endpoint of the instance {identifier}: it reaches that one instance, whatever its "
                "role, and stays on it after a failover; applications read through the cluster's reader endpoint"
            )
    return not_yet(f"{answer!r} is no endpoint of cluster {cluster['DBClusterIdentifier']}")


@exercise_check(
    "02.backups",
    notebook=NOTEBOOK,
    task=f"Keep a week of backups: set the cluster's backup retention to {BACKUP_DAYS} days, applied now.",
    hints=(
        "Settings of a cluster change with `rds.modify_db_cluster(DBClusterIdentifier=..., ...)`. Which parameter "
        "says how many days of backups (and of point-in-time restore) to keep?",
        f"`BackupRetentionPeriod={BACKUP_DAYS}`, and `ApplyImmediately=True` so it does not wait for the "
        "maintenance window.",
    ),
    solution=f'changed = rds.modify_db_cluster(DBClusterIdentifier=result.ids["cluster"], BackupRetentionPeriod={BACKUP_DAYS}, ApplyImmediately=True)',
)
def backups(lab: LiveLab) -> Outcome:
    cluster = lab.cluster
    days = int(cluster.get("BackupRetentionPeriod") or 0)
    pending = (cluster.get("PendingModifiedValues") or {}).get("BackupRetentionPeriod")
    if days >= BACKUP_DAYS:
        return passed(
            f"cluster {cluster['DBClusterIdentifier']} keeps {days} days of backups",
            {"cluster": cluster["DBClusterIdentifier"]},
        )
    if pending:
        return not_yet(
            f"the change to {pending} days waits for the maintenance window: modify again with ApplyImmediately=True"
        )
    return not_yet(
        f"the cluster keeps {days} day{'s' if days != 1 else ''} of backups: point-in-time restore reaches back "
        f"only that far; set BackupRetentionPeriod to {BACKUP_DAYS}"
    )
