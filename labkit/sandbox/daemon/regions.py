"""botocore's region lists for the daemon's boto3 Sessions: one parse per process, and none at all for lists this user's
earlier daemons already read from the same botocore release.

Runs in the daemon (installed as its main module is imported, before moto's service models are; saved by the
warm-up thread and at the daemon's stop).

moto lists each partition's regions as its service models are imported, each time through a new boto3 Session,
and botocore's `get_available_regions` reads a service's whole model just to learn its endpoint prefix: for EC2,
which moto imports on the way to the first RDS call, that is a 1 MB model parsed three times, 0.1-0.15 s apiece of
every start. The lists are a pure function of the botocore data installed with this process (the daemon's
environment has no AWS_ setting; `sandbox up` leaves them out), so they are shared by every Session here and kept,
per botocore version, in the user's cache folder beside the engine templates (templates.py), trusted on the same
terms: owned by this user or root, written by nobody else. A cache that is missing, untrusted or damaged is only
slower: the lists are read from botocore as before.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from pathlib import Path

import boto3.session
import botocore

from labkit.aws.regions import botocore_data
from labkit.home import private_dir, write_durably
from labkit.sandbox.templates import cache_root, untrusted_reason

log = logging.getLogger(__name__)
FOLDER = "botocore"  # in the user's labkit cache folder; holds only these small files


def cache_file(root: Path | None = None) -> Path:
    """This botocore release's region lists, in the user's cache folder."""
    return (root or cache_root()) / FOLDER / f"regions-{botocore.__version__}.json"


class RegionLists:
    """`get_available_regions` answered from one botocore session, remembered, and kept on disk by `save()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._session = botocore_data()  # labkit's one session for botocore's bundled data (labkit.aws.regions)
        self._lock = threading.Lock()
        self._known: dict[str, list[str]] = self._load()
        self._unsaved = False

    def _load(self) -> dict[str, list[str]]:
        if not self.path.exists():
            return {}
        reason = untrusted_reason(self.path.parent)
        if reason is not None:
            log.warning("not using the region lists in %s: %s", self.path, reason)
            return {}
        try:
            known = json.loads(self.path.read_text())
            if isinstance(known, dict) and all(
                isinstance(v, list) and all(isinstance(r, str) for r in v) for v in known.values()
            ):
                return known
        except (OSError, ValueError):
            pass
        log.warning("the region lists in %s are damaged; reading them from botocore again", self.path)
        return {}

    def get(self, service_name: str, partition_name: str, allow_non_regional: bool) -> list[str]:
        key = f"{service_name} {partition_name} {allow_non_regional}"
        with self._lock:
            if key not in self._known:
                regions = self._session.get_available_regions(service_name, partition_name, allow_non_regional)
                self._known[key], self._unsaved = list(regions), True
            return list(self._known[key])

    def save(self) -> None:
        """Keep what this process read for the next daemon (after its start: nothing waits on it)."""
        with self._lock:
            if not self._unsaved:
                return
            data = json.dumps(self._known, sort_keys=True).encode()
            self._unsaved = False
        folder = self.path.parent
        try:
            for made in (folder.parent, folder):  # made owner-only when missing; an existing one keeps its mode
                if not made.exists():  # (opened to others, it is refused below, not fixed: as templates.py does)
                    private_dir(made)
            reason = untrusted_reason(folder)
            if reason is not None:
                log.warning("not keeping the region lists in %s: %s", folder, reason)
                return
            write_durably(self.path, data)
        except OSError as exc:
            log.warning("could not keep the region lists in %s: %s", self.path, exc)


@functools.cache
def shared() -> RegionLists:
    """The process's region lists, in place of every boto3 Session's own (installed once, at the first call)."""
    lists = RegionLists(cache_file())

    def get_available_regions(
        self: boto3.session.Session, service_name: str, partition_name: str = "aws", allow_non_regional: bool = False
    ) -> list[str]:
        return lists.get(service_name, partition_name, allow_non_regional)

    boto3.session.Session.get_available_regions = get_available_regions  # type: ignore[method-assign]
    return lists
