"""The shape every lab resource shares: find, create, converge, wait, delete, all taking one LabContext.

Each family module (network, iam, database, compute) defines one registered class per AWS resource type.
A ResourceType lists its AWS objects from its `Describe` declaration; a Resource (a node of the lab graph)
finds its object by the lab, learner and node tags, so running any step twice is safe: a found resource is
never created again, and `converge` completes one that a failure left half made.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from botocore.exceptions import ClientError, WaiterError

from labkit.aws.backend import Backend
from labkit.aws.errors import RETRYABLE_CODES, THROTTLING_CODES, backoff, error_code
from labkit.aws.patience import Timing
from labkit.aws.tags import TAG_NODE, current_node, ec2_filters, is_lab_resource, lab_tags, resource_name, tag_dict
from labkit.config import LabConfig
from labkit.errors import LabkitError

if TYPE_CHECKING:
    from labkit.lab.resources.registry import Describe, PriceRow, TaggedCreate

T = TypeVar("T")
NOT_FOUND_ATTEMPTS = 5  # a new EC2 resource is visible everywhere within seconds; past that, NotFound is real


def not_found_yet(exc: ClientError) -> bool:
    """A NotFound about a resource created a moment ago: EC2 is eventually consistent, try again shortly."""
    return "NotFound" in error_code(exc)


@dataclass(frozen=True)
class Found:
    """One lab resource as it exists in the account."""

    kind: str
    node: str
    resource_id: str
    state: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Change:
    """One fix `converge` found for an existing resource: what it does (the plan shows it), and the call that
    does it (apply runs it; a plan never does), pyinfra's operation shape."""

    description: str
    make: Callable[[], object]


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
        self.leave_exercises = False  # leave what the workbook's exercises ask the learner to build (apply)
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
        return current_node(tag_dict(tags).get(TAG_NODE, "?"))

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
        key = getattr(resource_type, "type_name", resource_type)  # subclasses of one type share its listing
        if key not in self._snapshot:
            self._snapshot[key] = resource_type.list_tagged(self)
        return self._snapshot[key]

    def account_id(self) -> str:
        return self.cached("account", self.backend.account_id)

    # ----- waiting and retrying -----
    def wait(self, service: str, waiter_name: str, what: str, **params: Any) -> None:
        """Block until a boto3 waiter says the resource is ready; a timeout becomes a LabkitError.

        A NotFound right after a create is EC2's eventual consistency ("Eventual consistency" in the EC2 API
        reference): some waiters (vpc_available, subnet_available) fail on it at once, so it is retried a few
        times with growing pauses before it counts; so is a poll AWS throttled past botocore's own retries.
        """
        config: dict[str, Any] = {}
        if self.timing.poll_seconds is not None:
            config = {"Delay": self.timing.poll_seconds, "MaxAttempts": 300}
        waiter = self.client(service).get_waiter(waiter_name)
        pauses = backoff(self.timing.retry_first_delay, self.timing.retry_max_delay)
        for attempt in range(1, NOT_FOUND_ATTEMPTS + 1):
            try:
                waiter.wait(**params, **({"WaiterConfig": config} if config else {}))
                return
            except WaiterError as exc:
                error = exc.last_response.get("Error", {})
                code = error.get("Code", "")
                if ("NotFound" in code or code in THROTTLING_CODES) and attempt < NOT_FOUND_ATTEMPTS:
                    next(pauses)  # not there yet, or AWS's rate limit outlasted botocore's retries: wait again
                    continue
                raise LabkitError(
                    f"{what} did not become ready: {error.get('Message') or exc}",
                    field=what,
                    fix="look at `labkit status`; rerun apply to resume, or destroy to start over",
                ) from None

    def retry(self, action: Callable[[], T], what: str, retryable: Callable[[ClientError], bool] | None = None) -> T:
        """Run `action`, retrying errors that pass with time ('still in use' by default) with growing pauses,
        within a fixed number of attempts."""
        retryable = retryable or (lambda exc: error_code(exc) in RETRYABLE_CODES | THROTTLING_CODES)
        pauses = backoff(self.timing.retry_first_delay, self.timing.retry_max_delay)
        for attempt in range(1, self.timing.retry_attempts + 1):
            try:
                return action()
            except ClientError as exc:
                if not retryable(exc) or attempt == self.timing.retry_attempts:
                    raise
                next(pauses)
        raise AssertionError("unreachable")  # pragma: no cover


class ResourceType:
    """A registered AWS resource type: what it declares, and how its resources are listed from `describe`.

    The declarations are read by the registry (labkit.lab.resources.registry); listing-only types (what goes
    with an instance or a cluster) are ResourceTypes, the types labkit creates and deletes are Resources.
    """

    type_name: ClassVar[str]  # set by @register
    kind: ClassVar[str]  # what tables call it
    describe: ClassVar[Describe | None] = None
    stage: ClassVar[str | None] = None  # the stage (notebook) whose apply creates it; None: apply never does
    tagged_create: ClassVar[TaggedCreate | None] = None
    deleted_after: ClassVar[tuple[str, ...]] = ()  # types that must be gone before this one can go
    companions: ClassVar[tuple[str, ...]] = ()  # types that go with it, listed to prove they went
    prices: ClassVar[tuple[PriceRow, ...]] = ()
    cleanup_node: ClassVar[str | None] = None  # the node of a type only destroy handles (apply never creates it)
    holds: ClassVar[tuple[str, ...]] = ()  # for such a type: the types it keeps from being deleted until it goes
    lab_tagged: ClassVar[bool] = True  # carries the lab tags itself (the class scan finds it by them)
    deletable: ClassVar[bool] = False  # destroy deletes it

    # ----- reading one item of the describe call -----
    @classmethod
    def items_of(cls, reply_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The resources in a describe call's items (instances come grouped in reservations)."""
        return reply_items

    @classmethod
    def keep(cls, item: dict[str, Any]) -> bool:
        """False for items of the call that are not this type (a default VPC, an interface in use)."""
        return True

    @classmethod
    def id_of(cls, item: dict[str, Any]) -> str:
        return str(item[cls.listing().id])

    @classmethod
    def tags_of(cls, client: Any, item: dict[str, Any]) -> list[dict[str, str]] | None:
        """The item's tags; a type whose listing omits them reads them with one more call."""
        return item.get(cls.listing().tags)

    @classmethod
    def state_of(cls, item: dict[str, Any]) -> str:
        state = _dig(item, cls.listing().state)
        return str(state.get("Name", "") if isinstance(state, dict) else (state or ""))

    @classmethod
    def kind_of(cls, item: dict[str, Any]) -> str:
        """What the class view calls this item (a type may tell look-alikes apart)."""
        return cls.kind

    # ----- listing -----
    @classmethod
    def all_items(cls, client: Any, **params: Any) -> list[dict[str, Any]]:
        """Every resource of this type the describe call returns (any owner), with its fixed filters."""
        describe = cls.listing()
        if describe.filters:
            params["Filters"] = [*params.get("Filters", []), *describe.filters]
        items = paginate(client, describe.operation, describe.items, **params)
        return [item for item in cls.items_of(items) if cls.keep(item)]

    @classmethod
    def lab_params(cls, ctx: LabContext) -> dict[str, Any]:
        """Parameters that narrow the describe call to this lab and learner (EC2 filters by tag)."""
        return {"Filters": ctx.filters()} if cls.listing().service == "ec2" else {}

    @classmethod
    def may_be_ours(cls, ctx: LabContext, item: dict[str, Any]) -> bool:
        """A cheap check before reading tags with another call (a name prefix)."""
        return True

    @classmethod
    def list_tagged(cls, ctx: LabContext) -> list[Found]:
        """Every resource of this type tagged with this lab and learner (any node)."""
        client = ctx.client(cls.listing().service)
        found = []
        for item in cls.all_items(client, **cls.lab_params(ctx)):
            if cls.may_be_ours(ctx, item):
                tags = cls.tags_of(client, item)
                if ctx.is_ours(tags):
                    found.append(cls.found(ctx, item, tags))
        return found

    @classmethod
    def found(cls, ctx: LabContext, item: dict[str, Any], tags: list[dict[str, str]] | None) -> Found:
        describe = cls.listing()
        state = cls.state_of(item) if describe.state else "exists"
        detail = str(_dig(item, describe.detail) or "")
        return Found(cls.kind, cls.cleanup_node or ctx.node_of(tags), cls.id_of(item), state, detail)

    @classmethod
    def listing(cls) -> Describe:
        """The `describe` declaration (a type without one cannot be listed)."""
        if cls.describe is None:
            raise LabkitError(f"{cls.__name__} declares no describe call", field=cls.__name__)
        return cls.describe


def _dig(item: dict[str, Any], path: str) -> Any:
    """item["A"]["B"] for the path "A.B" (None when a key is missing)."""
    value: Any = item if path else None
    for key in path.split(".") if path else ():
        value = value.get(key) if isinstance(value, dict) else None
    return value


class Resource(ResourceType, ABC):
    """One node of the lab graph, backed by one AWS resource type.

    `find`/`list_tagged` only read; `create` makes the resource with its tags in the same call;
    `converge` completes what create could not do in one call (attachments, rules) and is safe to
    repeat; `wait` blocks until the resource is usable; `delete` removes it (dependents first).
    """

    adopted: ClassVar[bool] = False  # True for resources labkit uses but never creates or deletes
    deletable = True
    leaving_states: ClassVar[tuple[str, ...]] = ()  # states of a resource on its way out

    def __init__(self, node: str, depends_on: Iterable[str] = ()) -> None:
        self.node = node
        self.depends_on = tuple(depends_on)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node}>"

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

    def converge(self, ctx: LabContext, resource_id: str) -> list[Change]:
        """What an existing resource lacks of its desired shape, as changes; only reads (apply makes them)."""
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
    deletable = False
    lab_tagged = False

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


def paginate(client: Any, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
    """All items of a describe/list call, page by page where the call pages (describe_key_pairs does not)."""
    if not client.can_paginate(operation):
        return list(getattr(client, operation)(**params).get(key, []))
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page.get(key, []))
    return items
