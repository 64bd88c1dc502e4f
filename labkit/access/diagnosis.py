"""Why a database connection through a tunnel failed: one real cause, and only then a rule to blame.

On AWS a security group drops what it does not allow, so a blocked connection is a timeout, never a refusal
(VPC User Guide, "Security groups"); the sandbox refuses at once. Either way the reachability engine decides
whether a rule is the cause; otherwise the cause is named as it is: the backend's own service is down, the
database behind the endpoint is not available (stopped, failed, being deleted), or it does not answer although
the rules allow it and RDS reports it available.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labkit.access.lookup import lab_cluster
from labkit.engines import engine_of
from labkit.errors import LabkitError

AVAILABLE = "available"


def _service_down(backend: Any) -> LabkitError | None:
    """The backend's own local service (the sandbox) is not running: nothing else can be asked."""
    for check, ok, detail in backend.service_checks():
        if not ok:
            return LabkitError(f"{check}: {detail}", field=check, fix=detail.partition(": ")[2] or detail)
    return None


def _blocking_rule(on: str, port: int, config: Any, backend: Any) -> LabkitError | None:
    """The rule that blocks the instance from `on`, when the reachability engine finds one."""
    from labkit.security import can_reach  # the security layer sits beside access; imported when needed

    verdict = can_reach("instance", on, port, config=config, backend=backend)
    blocked = verdict.blocked_by
    if blocked is None:
        return None
    return LabkitError(
        f"the connection to {on} is blocked at {blocked.step}: {blocked.rule} ({blocked.resource})",
        field="security groups" if "security group" in blocked.step.lower() else blocked.step,
        fix=f"{verdict.fix or 'add the missing rule'}\n  (the whole path: labkit.can_reach('instance', '{on}'))",
    )


def _members(on: str, cluster: dict[str, Any]) -> list[str]:
    members = cluster.get("DBClusterMembers", [])
    if on == "writer":
        return [m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")]
    if on == "reader":
        return [m["DBInstanceIdentifier"] for m in members if not m.get("IsClusterWriter")]
    return [m["DBInstanceIdentifier"] for m in members if m["DBInstanceIdentifier"] == on]


def _database_down(on: str, config: Any, backend: Any) -> LabkitError | None:
    """The DB instance behind `on` is missing or not available (stopped, failed, rebooting, being deleted)."""
    cluster = lab_cluster(config, backend)
    names = _members(on, cluster)
    if not names:
        return LabkitError(
            f"the cluster {cluster['DBClusterIdentifier']} has no {on} instance",
            field="on",
            fix="create it with labkit.apply(config, only='database'), or use on='writer'",
        )
    rds = backend.client("rds")
    states = {name: rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0] for name in names}
    down = {name: item.get("DBInstanceStatus", "?") for name, item in states.items()}
    down = {name: status for name, status in down.items() if status != AVAILABLE}
    if not down:
        return None
    listed = ", ".join(f"{name} is {status}" for name, status in down.items())
    return LabkitError(
        f"the database behind {on} is not available: {listed}",
        field=on,
        fix="wait until labkit.status() shows it available (a restart takes minutes on AWS), then run the cell "
        "again; if it failed, labkit.apply(config, only='database') replaces what is missing",
    )


def connection_failure(on: str, tunnel: Any, message: str, refusal: str | None = None) -> LabkitError:
    """The one cause of a lost or refused connection to `on` through `tunnel`, for the learner."""
    backend, config = tunnel.backend, tunnel.config
    port = tunnel.target.port if tunnel.target else engine_of(config).port
    seen = f" (the tunnel reported: {refusal})" if refusal else ""
    try:
        cause = (
            _service_down(backend) or _blocking_rule(on, port, config, backend) or _database_down(on, config, backend)
        )
    except LabkitError as exc:  # the diagnosis itself found the cause (e.g. no cluster at all)
        cause = exc
    except (ClientError, BotoCoreError) as exc:
        return LabkitError(
            f"lost the connection to {on}: {message}{seen}; its cause could not be checked ({exc})",
            field="tunnel",
            fix=f"check labkit.status() and labkit.can_reach('instance', '{on}')",
        )
    if cause is not None:
        return LabkitError(f"{cause.message}{seen}", field=cause.field, fix=cause.fix)
    return LabkitError(
        f"{on} did not accept the connection, though the rules allow it and RDS reports it available: "
        f"{refusal or message}",
        field="database",
        fix="run the cell again in a minute (a restarting database refuses connections); if it persists, "
        "check labkit.status() and the database's events in the RDS console",
    )
