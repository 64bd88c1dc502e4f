"""Keep the control plane on disk: moto's whole in-memory account, saved after every change, loaded at start.

Runs in the daemon. moto keeps every resource in Python objects and has no persistence of its own (its
maintainers point to the request recorder and seeded ids). Replaying recorded requests is not exact: ids
come from a random generator that reads also draw from, timestamps would be those of the replay, and the
reconciler's own calls (generated passwords) would have to be replayed in the same interleaving. Saving the
objects themselves is exact: the same ids, timestamps, states and cross-references, by construction.

So after each mutating API call (and each reconciler pass that changed a resource) the daemon pickles the
sandbox account's backends of every service in use and replaces the snapshot file atomically, *before* the
call's response goes out: an acknowledged call survives `kill -9` of the daemon. If the write fails (a full
disk, a read-only home) the in-memory account is put back as it was, so the call failed as a whole and
nothing is half applied, and the caller gets an AWS-shaped `ServiceUnavailable` error naming the cause; the
same for any other failure to save (an object pickle cannot take), whatever its type.

Some of what moto keeps cannot be pickled as it is, and is rebuilt on load: private keys (KMS keys) go as
DER bytes; `defaultdict`s with a lambda factory and dict subclasses whose `__init__` takes arguments are
rebuilt without calling it (keeping a defaultdict's factory); locks come back new (no thread holds one after a restart); weak references and
weak dictionaries come back pointing at the same objects. State that only means something inside this
process is dropped: a listing half way through (a generator, as moto's Resource Groups Tagging API keeps one
per page token) cannot resume after a restart, so a backend's entries that hold one are left out (the token
has expired, as AWS's do) and a generator anywhere else comes back exhausted. AWS's own managed IAM policies
(about 1,300 per partition, 24 MB) are not stored unless attached; they are rebuilt from moto's bundled data,
as a fresh account has them. Whatever still cannot be saved fails the call whole (503), never the daemon.
"""

from __future__ import annotations

import copy
import copyreg
import io
import json
import logging
import pickle
import threading
import time
import types
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from labkit.errors import SandboxError
from labkit.home import write_durably
from labkit.sandbox.daemon.amis import shed_ecs_images

log = logging.getLogger("labkit.sandbox.daemon.persist")
SNAPSHOT_FILE = "control-plane.snapshot"
FORMAT = 1  # bump when what is stored changes shape; an older snapshot is then refused with a way out
SKIPPED_SERVICES = ("moto_api",)  # moto's own admin state (seeds, recorder), not the account's


class SnapshotError(SandboxError):
    """The saved control plane cannot be loaded (corrupt, or written by an incompatible version)."""


def snapshot_path(home: Path) -> Path:
    return home / "data" / SNAPSHOT_FILE


def read_header(path: Path) -> dict[str, Any] | None:
    """The snapshot's first line (format, versions, time), or None when there is no snapshot.

    Cheap (no moto, no unpickling), so `labkit sandbox up` can refuse an incompatible snapshot before starting.
    """
    try:
        with path.open("rb") as stream:
            line = stream.readline(4096)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(path, str(exc)) from None
    try:
        header = json.loads(line)
        if not isinstance(header, dict) or "format" not in header:
            raise ValueError("no header")
    except ValueError:
        raise _unreadable(path, "it is not a labkit sandbox snapshot (damaged or truncated)") from None
    return header


def check_header(path: Path) -> dict[str, Any] | None:
    """The header of a snapshot this labkit can load; a SnapshotError with the way out otherwise."""
    header = read_header(path)
    if header is not None and header.get("format") != FORMAT:
        raise SnapshotError(
            f"the saved sandbox in {path} was written by labkit {header.get('labkit', '?')} in a format this labkit "
            f"({_labkit_version()}) does not read",
            field="sandbox snapshot",
            fix=f"use labkit {header.get('labkit', '?')} to finish with that lab, or start empty with "
            "`labkit sandbox reset --yes` (this deletes the saved lab and its databases)",
        )
    return header


def _unreadable(path: Path, why: str) -> SnapshotError:
    return SnapshotError(
        f"the saved sandbox in {path} cannot be read: {why}",
        field="sandbox snapshot",
        fix="start empty with `labkit sandbox reset --yes` (this deletes the saved lab and its databases); "
        f"or move {path} aside to keep it: the next `labkit sandbox up` starts an empty sandbox, and the old "
        "databases are moved to data/orphans/ beside it, never deleted",
    )


def _labkit_version() -> str:
    from labkit import __version__  # read when a snapshot is written or checked, not at import

    return __version__


def _moto_version() -> str:
    import moto  # moto loads in the daemon only: the client (control.py) imports this module too

    return str(moto.__version__)


# ---- what is stored --------------------------------------------------------------------------------


def _backend_dicts() -> Iterator[Any]:
    """moto's per-service stores that hold anything (moto itself tracks which ones are in use)."""
    from moto.core.base_backend import BackendDict  # moto: the daemon only, as above

    for backends in list(BackendDict._instances):
        if getattr(backends, "service_name", None) not in SKIPPED_SERVICES:
            yield backends


def _account_state(account: str) -> dict[str, dict[str, Any]]:
    """service name -> {region or partition -> backend} for one account."""
    state: dict[str, dict[str, Any]] = {}
    for backends in _backend_dicts():
        if account in backends:
            state[backends.service_name] = dict(dict.items(backends[account]))
    return state


SANDBOX_PARTITION = "aws"  # the partition of the sandbox's regions; its IAM is always kept


def shed_unused_partitions(state: dict[str, dict[str, Any]]) -> list[str]:
    """Drop from a loaded account the IAM of partitions other than the sandbox's that hold nothing but what moto
    makes for a new one (AWS's managed policies, attached to nothing); returns the partitions dropped.

    Homes made before the daemon served every request as its own account (MOTO_ACCOUNT_ID) saved an IAM per
    partition, six of ~1,300 managed policies each: most of each load and save. A partition that holds anything a
    learner made (a role, a user, a policy of theirs, a tag, an attachment) is kept whole."""
    iam = state.get("iam", {})
    shed = [name for name, backend in iam.items() if name != SANDBOX_PARTITION and _as_new(backend)]
    for name in shed:
        del iam[name]
    return shed


_MOTO_MADE = ("aws_managed_policies", "managed_policies")  # what moto fills in for every new IAM account


def _as_new(backend: Any) -> bool:
    """An IAM backend holding only what moto made with it: no collection of its holds anything else."""
    for name, value in vars(backend).items():
        if name in _MOTO_MADE:
            continue
        if isinstance(value, dict | list | set) and value:
            return False
        if name in ("credential_report", "account_password_policy") and value is not None:
            return False
    if getattr(getattr(backend, "tagger", None), "tags", None):
        return False
    return all(
        type(policy).__name__ == "AWSManagedPolicy" and not policy.attachment_count
        for policy in backend.managed_policies.values()
    )


def _restore_account(account: str, state: dict[str, dict[str, Any]]) -> None:
    """Put `state` in place of the account's current backends (services not in it are emptied)."""
    from moto.backends import get_backend  # moto: the daemon only, as above

    present = {backends.service_name: backends for backends in _backend_dicts()}
    for name, backends in present.items():
        if name not in state and account in backends:
            dict.clear(backends[account])
    for name, regions in state.items():
        backends = present.get(name) or get_backend(name)  # type: ignore[call-overload]
        per_account = backends[account]
        dict.clear(per_account)
        dict.update(per_account, regions)


# ---- pickling what moto keeps ----------------------------------------------------------------------


def _load_private_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_der_private_key  # only a KMS key needs it

    return load_der_private_key(der, None)


def _dict_of_dicts() -> defaultdict[str, dict[str, Any]]:
    return defaultdict(dict)


def _defaultdict_of(items: dict[Any, Any], factory: Callable[[], Any] | None) -> defaultdict[Any, Any]:
    rebuilt: defaultdict[Any, Any] = defaultdict(factory or _dict_of_dicts)
    rebuilt.update(items)
    return rebuilt


def _dict_subclass(
    cls: type, items: dict[Any, Any], attributes: dict[str, Any], factory: Callable[[], Any] | None = None
) -> Any:
    """moto's dict subclass without calling its `__init__`; a defaultdict subclass keeps its default factory
    (SSM's ParameterDict fills itself lazily through it: without one, its first lookup fails)."""
    rebuilt = cls.__new__(cls)
    if isinstance(rebuilt, defaultdict):
        defaultdict.__init__(rebuilt, factory)
    dict.update(rebuilt, items)
    rebuilt.__dict__.update(attributes)
    return rebuilt


def _factory(obj: defaultdict[Any, Any]) -> Callable[[], Any] | None:
    """A defaultdict's factory as it can be saved (moto's only lambda factory is `lambda: defaultdict(dict)`)."""
    factory = obj.default_factory
    return _dict_of_dicts if getattr(factory, "__name__", "") == "<lambda>" else factory


@cache
def _aws_policy_data() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data  # moto: the daemon only

    return dict(json.loads(aws_managed_policies_data))


def _aws_policy(name: str, account: str, partition: str, policy_id: str) -> Any:
    from moto.iam.models import AWSManagedPolicy  # moto: the daemon only

    policy = AWSManagedPolicy.from_data(name, account, partition, _aws_policy_data()[name])
    policy.id = policy_id  # moto draws a random PolicyId; keep the one the learner may have seen
    return policy


# ---- state that only means something inside this process ------------------------------------------

# A listing half way through: moto's paginated calls keep one per page token (resourcegroupstaggingapi's
# `_pages`); it cannot be pickled, and could not resume after a restart anyway.
_LISTINGS = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
_warned: set[str] = set()


_SCANNED = frozenset({*_LISTINGS, dict, list, tuple})  # entry types that may be or hold a listing (by exact type:
# a backend's big dicts hold thousands of model objects, and a save looks at each entry)


def _holds_listing(entry: Any) -> bool:
    """A cache entry that is a listing half way through, or a record (dict, list, tuple) holding one."""
    if type(entry) in _LISTINGS:
        return True
    items = list(entry.values()) if type(entry) is dict else entry
    return any(type(item) in _LISTINGS for item in items)


def _without_listings(backend: Any) -> dict[str, Any] | None:
    """A backend's attributes without the cache entries that hold a listing half way through (a page token
    then has expired after a restart, as AWS's tokens expire); None when it holds none (the usual case)."""
    state = backend.__getstate__()
    if not isinstance(state, dict):
        return None
    durable: dict[str, Any] | None = None
    for name, value in list(state.items()):
        if not isinstance(value, dict):
            continue
        stale = [key for key, entry in list(value.items()) if type(entry) in _SCANNED and _holds_listing(entry)]
        if stale:
            kept = copy.copy(value)  # the same mapping type (a defaultdict keeps its factory)
            for key in stale:
                kept.pop(key, None)
            durable = durable if durable is not None else dict(state)
            durable[name] = kept
    return durable


def _expired_listing(obj: Any) -> tuple[Any, ...]:
    """A listing found outside a backend's cache: saved as finished (it cannot resume), logged once per kind."""
    kind = type(obj).__qualname__
    if kind not in _warned:
        _warned.add(kind)
        log.warning("a %s in moto's state cannot outlive this process; it is saved as finished", kind)
    return iter, ((),)


class _Gone:
    """Stands for the object of a weak reference that was already dead when saved."""


def _dead_reference() -> weakref.ref[Any]:
    return weakref.ref(_Gone())  # its only referent is collected at once


def _weak_reference(obj: weakref.ref[Any]) -> tuple[Any, ...]:
    referent = obj()
    return (_dead_reference, ()) if referent is None else (weakref.ref, (referent,))


_REBUILT: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    # by exact type: one dict lookup per object, so a save costs no more for objects that need nothing
    type(threading.Lock()): lambda obj: (threading.Lock, ()),  # new and free: no thread holds it after a restart
    type(threading.RLock()): lambda obj: (threading.RLock, ()),
    **{kind: _expired_listing for kind in _LISTINGS},
    weakref.ReferenceType: _weak_reference,
    # made empty, then filled (SETITEMS) after being memoized, so a cycle back to the dictionary is fine
    weakref.WeakValueDictionary: lambda obj: (weakref.WeakValueDictionary, (), None, None, iter(list(obj.items()))),
    weakref.WeakKeyDictionary: lambda obj: (weakref.WeakKeyDictionary, (), None, None, iter(list(obj.items()))),
}


class _Pickler(pickle.Pickler):
    """moto's objects, with those pickle cannot take as they are rebuilt on load or left out (see the module doc).

    Only `reducer_override` is defined (no `persistent_id`): the C pickler then calls into Python for objects
    of classes only, not for each of the ~200,000 strings, which halves the time of a save.
    """

    def __init__(self, file: Any, protocol: int) -> None:
        super().__init__(file, protocol=protocol)
        self._backend_class = _backend_class()

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls in _PLAIN:  # most objects (datetimes, AMIs, volumes): one set lookup, then pickle's own way
            return NotImplemented
        rebuild = _REBUILT.get(cls)
        if rebuild is not None:
            return rebuild(obj)
        if isinstance(obj, self._backend_class):
            durable = _without_listings(obj)
            return NotImplemented if durable is None else (copyreg.__newobj__, (cls,), durable)
        if cls.__name__ == "AWSManagedPolicy" and not obj.attachment_count and obj.name in _aws_policy_data():
            return _aws_policy, (obj.name, obj.account_id, obj.partition, obj.id)  # rebuilt as moto builds it
        if cls.__module__.startswith("cryptography.") and hasattr(obj, "private_bytes"):
            from cryptography.hazmat.primitives import serialization  # only a private key needs it

            der = obj.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            return _load_private_key, (der,)
        if cls is defaultdict and getattr(obj.default_factory, "__name__", "") == "<lambda>":
            return _defaultdict_of, (dict(obj), None)  # moto's only such factory: lambda: defaultdict(dict)
        if isinstance(obj, dict) and cls not in (dict, defaultdict) and cls.__module__.startswith("moto."):
            factory = _factory(obj) if isinstance(obj, defaultdict) else None
            return _dict_subclass, (cls, dict(obj), dict(getattr(obj, "__dict__", {})), factory)
        if _is_plain(cls, self._backend_class):
            _PLAIN.add(cls)
        return NotImplemented


_PLAIN: set[type] = set()  # classes none of `reducer_override`'s cases can apply to, whatever the object


@cache
def _backend_class() -> type:
    from moto.core.base_backend import BaseBackend  # moto: the daemon only

    return BaseBackend


def _is_plain(cls: type, backend_class: type) -> bool:
    """True when no case of `reducer_override` can apply to any object of `cls`: each case is decided by the class
    alone except the managed policies, the private keys and the dictionaries, which are never called plain."""
    return (
        cls not in _REBUILT
        and not issubclass(cls, backend_class)
        and cls.__name__ != "AWSManagedPolicy"
        and not cls.__module__.startswith("cryptography.")
        and not issubclass(cls, dict)
    )


def dumps(state: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    return pickle.loads(data)


# ---- the store -------------------------------------------------------------------------------------


class ControlPlaneStore:
    """The sandbox account, saved to `home/data/control-plane.snapshot` and loaded from it."""

    def __init__(self, home: Path, account: str) -> None:
        self.path = snapshot_path(home)
        self.account = account
        self.lock = threading.RLock()  # one save (or rollback) at a time; held across a mutating call
        self._last_good: bytes | None = None
        self.saves = 0
        self.save_seconds = 0.0  # the time all saves took (the daemon logs it when it stops)

    def load(self) -> bool:
        """Restore the saved account into moto; False when there is none (a new sandbox)."""
        header = check_header(self.path)
        if header is None:
            return False
        started = time.perf_counter()
        try:
            with self.path.open("rb") as stream:
                stream.readline()
                data = stream.read()
            state = loads(data)
        except Exception as exc:  # any failure to unpickle: damaged, or moto changed its classes
            saved_moto = header.get("moto", "?")
            raise _unreadable(
                self.path,
                f"{type(exc).__name__}: {exc} (saved with moto {saved_moto}, this is moto {_moto_version()})",
            ) from None
        shed = shed_unused_partitions(state)
        images = shed_ecs_images(state)
        _restore_account(self.account, state)
        self._last_good = dumps(state) if shed or images else data
        if shed:
            log.info("shed the IAM of unused partitions %s (saved at the next change)", ", ".join(sorted(shed)))
        if images:
            log.info("shed %d unused ECS-optimized images moto had made (amis.py; saved at the next change)", images)
        log.info("control plane restored from %s in %.0f ms", self.path, (time.perf_counter() - started) * 1e3)
        return True

    def save(self, rollback: bool = True) -> None:
        """Write the account now. On any failure (a disk error, or state pickle cannot take) raise it, after
        putting the account back as last saved when `rollback` (an API call that fails whole); the daemon's own
        changes are kept and saved next time."""
        with self.lock:
            started = time.perf_counter()
            try:
                data = self._dump()
                self._write(data)
            except Exception:
                if rollback:
                    try:
                        self.rollback()
                    except Exception:  # the caller still gets the save's failure: the call is not acknowledged
                        log.exception("could not put the account back as last saved")
                raise
            self._last_good = data
            self.saves += 1
            self.save_seconds += time.perf_counter() - started

    def _dump(self, attempts: int = 3) -> bytes:
        """The account's bytes. A read served meanwhile may grow a dict being pickled (a page token, a region's
        backend made on first use): pickle then raises RuntimeError, and a second try sees a settled account."""
        for _ in range(attempts - 1):
            try:
                return dumps(_account_state(self.account))
            except RecursionError:
                raise
            except RuntimeError as exc:  # "dictionary changed size during iteration"
                log.info("the account changed while it was being saved (%s); saving again", exc)
        return dumps(_account_state(self.account))

    def rollback(self) -> None:
        """Put the account back as it was at the last successful save (or load)."""
        with self.lock:
            if self._last_good is None:
                _restore_account(self.account, {})
            else:
                _restore_account(self.account, loads(self._last_good))

    def _write(self, data: bytes) -> None:
        header = {
            "format": FORMAT, "labkit": _labkit_version(), "moto": _moto_version(), "saved_at": time.time(),
        }  # fmt: skip
        write_durably(self.path, json.dumps(header).encode() + b"\n" + data)

    def forget(self) -> None:
        """Delete the snapshot (an explicit reset only)."""
        self.path.unlink(missing_ok=True)
