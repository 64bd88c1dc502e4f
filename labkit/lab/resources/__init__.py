"""The shape every lab resource shares: find, create, converge, wait, delete, all taking one LabContext.

Each family module (network, database, compute, iam) defines one Resource subclass per AWS resource type.
A Resource finds its AWS object by the lab, learner and node tags, so running any step twice is safe: a
found resource is never created again, and `converge` completes one that a failure left half made.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from botocore.exceptions import ClientError, WaiterError

from labkit.aws.backend import Backend
from labkit.aws.errors import RETRYABLE_CODES, error_code
from labkit.aws.patience import Timing
from labkit.aws.tags import TAG_NODE, ec2_filters, is_lab_resource, lab_tags, resource_name, tag_dict
from labkit.config import LabConfig
from labkit.errors import LabkitError

T = TypeVar("T")


@dataclass(frozen=True)
class Found:
    """One lab resource as it exists in the account."""

    kind: str
    node: str
    resource_id: str
    state: str = ""
    detail: str = ""


_current = threading.local()


def current_step() -> str | None:
    """The graph node the calling thread is working on (None outside plan/apply/destroy steps)."""
    return getattr(_current, "node", None)


@contextlib.contextmanager
def step_scope(node: str) -> Iterator[None]:
    """Mark the calling thread as working on `node` (read by progress display and by test fault injection)."""
    previous = current_step()
    _current.node = node
    try:
        yield
    finally:
        _current.node = previous


class LabContext:
    """What every resource step needs: the config, AWS clients, names and tags, and the ids found so far."""

    def __init__(self, config: LabConfig, backend: Backend, timing: Timing | None = None) -> None:
        self.config = config
        self.backend = backend
        self.timing = timing or backend.timing
        self.ids: dict[str, str] = {}
        self.notes: list[str] = []
        self._cache: dict[str, Any] = {}
        self._cache_lock = threading.RLock()
        self._snapshot: dict[Any, list[Found]] | None = None

    def client(self, service: str) -> Any:
        return self.backend.client(service)

    # ----- identity -----
    def name(self, node: str) -> str:
        return resource_name(self.config.lab, self.config.learner, node)

    @property
    def name_prefix(self) -> str:
        return f"{self.config.lab}-{self.config.learner}-"

    @property
    def iam_path(self) -> str:
        """IAM path that holds this learner's roles and profiles, so a listing by path finds only them."""
        return f"/labkit/{self.config.lab}/{self.config.learner}/"

    def tags(self, node: str) -> list[dict[str, str]]:
        return lab_tags(self.config.lab, self.config.learner, node)

    def tag_specifications(self, node: str, *resource_types: str) -> list[dict[str, Any]]:
        """EC2 TagSpecifications: tags applied by the create call itself, so nothing is ever untagged."""
        return [{"ResourceType": kind, "Tags": self.tags(node)} for kind in resource_types]

    def filters(self, node: str | None = None) -> list[dict[str, object]]:
        return ec2_filters(self.config.lab, self.config.learner, node)

    def is_ours(self, tags: list[dict[str, str]] | None) -> bool:
        return is_lab_resource(tags, self.config.lab, self.config.learner)

    @staticmethod
    def node_of(tags: list[dict[str, str]] | None) -> str:
        return tag_dict(tags).get(TAG_NODE, "?")

    def id_of(self, node: str) -> str:
        """The id of a dependency that must already exist."""
        try:
            return self.ids[node]
        except KeyError:
            raise LabkitError(
                f"{node} is needed but does not exist yet",
                field=node,
                fix="run apply; it creates dependencies first",
            ) from None

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        """Compute a value once per context (AZ lists, the AMI id, the account id)."""
        with self._cache_lock:
            if key not in self._cache:
                self._cache[key] = compute()
            return self._cache[key]

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within this block each resource type is listed once (plan reads every node at the same moment)."""
        self._snapshot = {}
        try:
            yield
        finally:
            self._snapshot = None

    def tagged(self, resource_type: Any) -> list[Found]:
        """resource_type.list_tagged(self), taken from the snapshot when one is open."""
        if self._snapshot is None:
            return resource_type.list_tagged(self)
        key = resource_type.list_tagged.__func__
        if key not in self._snapshot:
            self._snapshot[key] = resource_type.list_tagged(self)
        return self._snapshot[key]

    def account_id(self) -> str:
        return self.cached("account", self.backend.account_id)

    # ----- waiting and retrying -----
    def wait(self, service: str, waiter_name: str, what: str, **params: Any) -> None:
        """Block until a boto3 waiter says the resource is ready; a timeout becomes a LabkitError."""
        config: dict[str, Any] = {}
        if self.timing.poll_seconds is not None:
            config = {"Delay": self.timing.poll_seconds, "MaxAttempts": 300}
        try:
            self.client(service).get_waiter(waiter_name).wait(**params, **({"WaiterConfig": config} if config else {}))
        except WaiterError as exc:
            raise LabkitError(
                f"{what} did not become ready: {exc.last_response.get('Error', {}).get('Message') or exc}",
                field=what,
                fix="look at `labkit status`; rerun apply to resume, or destroy to start over",
            ) from None

    def retry(self, action: Callable[[], T], what: str) -> T:
        """Run `action`, retrying 'still in use' errors with growing pauses, within a fixed bound."""
        delay = self.timing.retry_first_delay
        for attempt in range(1, self.timing.retry_attempts + 1):
            try:
                return action()
            except ClientError as exc:
                if error_code(exc) not in RETRYABLE_CODES or attempt == self.timing.retry_attempts:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, self.timing.retry_max_delay)
        raise AssertionError("unreachable")  # pragma: no cover


class Resource(ABC):
    """One node of the lab graph, backed by one AWS resource type.

    `find`/`list_tagged` only read; `create` makes the resource with its tags in the same call;
    `converge` completes what create could not do in one call (attachments, rules) and is safe to
    repeat; `wait` blocks until the resource is usable; `delete` removes it (dependents first).
    """

    kind: ClassVar[str]
    adopted: ClassVar[bool] = False  # True for resources labkit uses but never creates or deletes
    leaving_states: ClassVar[tuple[str, ...]] = ()  # states of a resource on its way out

    def __init__(self, node: str, depends_on: Iterable[str] = ()) -> None:
        self.node = node
        self.depends_on = tuple(depends_on)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node}>"

    @classmethod
    @abstractmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        """Every resource of this type tagged with this lab and learner (any node)."""

    def find_all(self, ctx: LabContext) -> list[Found]:
        """Every resource of this node that exists (and is not on its way out); more than one is a duplicate."""
        matches = [f for f in ctx.tagged(type(self)) if f.node == self.node and f.state not in self.leaving_states]
        return sorted(matches, key=lambda f: f.resource_id)

    def find(self, ctx: LabContext) -> Found | None:
        """This node's resource, if it exists."""
        matches = self.find_all(ctx)
        return matches[0] if matches else None

    @abstractmethod
    def create(self, ctx: LabContext) -> str:
        """Create the resource, tagged in the create call; return its id."""

    def converge(self, ctx: LabContext, resource_id: str, *, dry_run: bool = False) -> list[str]:
        """Bring an existing resource to the desired shape; return what was (or, dry, would be) fixed."""
        return []

    def wait(self, ctx: LabContext, resource_id: str) -> None:
        """Block until the resource is usable by its dependents."""
        return None

    @abstractmethod
    def delete(self, ctx: LabContext, resource_id: str) -> None:
        """Delete the resource and wait until it is gone."""


class Adopted(Resource):
    """A resource the lab uses but does not own (the default VPC and its subnets): found, never changed."""

    adopted = True

    @classmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        return []

    def find_all(self, ctx: LabContext) -> list[Found]:
        found = self.find(ctx)
        return [found] if found else []

    def create(self, ctx: LabContext) -> str:
        raise LabkitError(f"{self.node} is not created by labkit", field="vpc", fix="set vpc = 'create' instead")

    def delete(self, ctx: LabContext, resource_id: str) -> None:
        return None  # never delete what labkit did not create


def by_tags(
    ctx: LabContext,
    kind: str,
    items: Iterable[dict[str, Any]],
    id_key: str,
    tags_key: str = "Tags",
    state_key: str = "State",
) -> list[Found]:
    """Found records for the tagged items of one describe call (helper for EC2-style listings)."""
    found = []
    for item in items:
        if ctx.is_ours(item.get(tags_key)):
            state = item.get(state_key)
            state = state.get("Name", "") if isinstance(state, dict) else (state or "")
            found.append(Found(kind, ctx.node_of(item.get(tags_key)), item[id_key], str(state)))
    return found


def paginate(client: Any, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
    """All items of a paginated describe/list call."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page.get(key, []))
    return items
