"""What Aurora's control plane does on its own, written into moto's RDS state: instance states, failovers, events.

Runs in the daemon (the reconciler's thread and the moto server's request threads). moto reports a DB instance
`available` the moment it is created and never changes it; Aurora reports `creating` until the database
answers, `rebooting` while it restarts, and on its own fails a cluster over when its writer dies, recording
RDS events (`describe_events`). The API has no call for any of this, so the daemon writes moto's models
directly, here and only here. Every change is saved with the control plane (persist.py).

`InstanceStates` is WSGI middleware: a CreateDBInstance answers `creating` (as AWS does) and a RebootDBInstance
`rebooting`, so a waiter started right after the call sees what it would see on AWS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit.sandbox.daemon.changes import call_buffered
from labkit.sandbox.daemon.request import api_request

log = logging.getLogger("labkit.sandbox.daemon.rdsmodel")
_lock = threading.Lock()
_reboots: dict[tuple[str, str], bool] = {}  # (region, instance) asked to reboot -> with ForceFailover


def _backend(region: str) -> Any:
    from moto.backends import get_backend  # moto loads with the first call that needs it, not at import
    from moto.core import DEFAULT_ACCOUNT_ID

    return get_backend("rds")[DEFAULT_ACCOUNT_ID][region]


def set_status(region: str, instance: str, status: str) -> bool:
    """Set a DB instance's DBInstanceStatus; False when it no longer exists."""
    model = _backend(region).databases.get(instance)
    if model is None:
        return False
    if model.status != status:
        log.info("DB instance %s: %s -> %s", instance, model.status, status)
        model.status = status
    return True


def restarting(instances: Iterable[str]) -> list[str]:
    """Before a restarted daemon serves: each of `instances` (the servers it ran, which it starts again) that the
    saved control plane calls `available` is `starting` until its server answers (the reconciler publishes it
    then), so no waiter sees `available` for an endpoint nothing answers yet. Returns the instances changed."""
    from moto.backends import get_backend  # moto loads in the daemon only, as above
    from moto.core import DEFAULT_ACCOUNT_ID

    wanted, changed = set(instances), []
    if not wanted:
        return changed
    for backend in get_backend("rds")[DEFAULT_ACCOUNT_ID].values():
        for name, model in backend.databases.items():
            if name in wanted and model.status == "available":
                model.status = "starting"
                changed.append(name)
    return changed


def status(region: str, instance: str) -> str | None:
    model = _backend(region).databases.get(instance)
    return None if model is None else str(model.status)


def take_reboot(region: str, instance: str) -> bool | None:
    """Once per RebootDBInstance call: None when none was asked, else whether ForceFailover was given. (A
    `rebooting` status alone does not say it: the daemon's own restarts show it too.)"""
    with _lock:
        return _reboots.pop((region, instance), None)


def fail_over(region: str, cluster: str, target: str) -> None:
    """Make `target` the cluster's writer in the control plane (what FailoverDBCluster does)."""
    backend = _backend(region)
    backend.clusters[cluster].failover(backend.databases[target])


def add_event(region: str, source_type: str, source: str, message: str, categories: list[str]) -> None:
    """Record an RDS event, as Aurora does for a failover or a restart (see `describe_events`)."""
    from moto.core.utils import utcnow  # moto loads with the first call that needs it, not at import
    from moto.rds.models import Event

    backend = _backend(region)
    model = backend.databases.get(source) if source_type == "db-instance" else backend.clusters.get(source)
    event = Event.__new__(Event)  # moto's constructor knows only a few event types
    event.source_identifier = source
    event.source_type = source_type
    event.message = message
    event.event_categories = categories
    event.source_arn = getattr(model, "arn", "")
    event.date = utcnow()
    backend.events.append(event)
    log.info("RDS event %s %s: %s", source_type, source, message)


@dataclass
class _Call:
    action: str
    region: str
    instance: str
    force_failover: bool


def _call(environ: dict[str, Any]) -> _Call | None:
    """The RDS call this request is, when it is one whose answer Aurora gives differently from moto."""
    request = api_request(environ)
    region = request.region_of("rds")
    if request.method != "POST" or not request.form_encoded or not region:
        return None
    if request.action not in ("CreateDBInstance", "RebootDBInstance"):
        return None
    force = request.param("ForceFailover", "false").lower() == "true"
    return _Call(request.action, region, request.param("DBInstanceIdentifier"), force)


class InstanceStates:
    """WSGI middleware: CreateDBInstance answers `creating`, RebootDBInstance `rebooting`, as on AWS."""

    def __init__(self, app: Any, wake: threading.Event) -> None:
        self.app = app
        self.wake = wake

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        call = _call(environ)
        if call is None:
            return self.app(environ, start_response)
        status_line, headers, body = call_buffered(self.app, environ)
        if status_line.startswith("200"):
            new_status = "creating" if call.action == "CreateDBInstance" else "rebooting"
            if set_status(call.region, call.instance, new_status):
                body = body.replace(
                    b"<DBInstanceStatus>available</DBInstanceStatus>",
                    f"<DBInstanceStatus>{new_status}</DBInstanceStatus>".encode(),
                )
                if call.action == "RebootDBInstance":
                    with _lock:
                        _reboots[(call.region, call.instance)] = call.force_failover
                self.wake.set()
        headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in headers]
        start_response(status_line, headers)
        return [body]
