"""What every strategy's loop is given: the cluster's names, a way to resolve and connect, one write, and a record
of every attempt. The strategies (naive.py, backoff.py, pool.py, topology.py) differ only in how they connect.

One write is what the shop does when an order comes in: an autocommit INSERT on the writer, after asking which
instance answered (the engine's identity query), so each acknowledged write says where it was committed. Each
attempt is one row: when it was sent and done, acknowledged or not, by which instance, and the error by kind.
Timeouts are short (2 s): a strategy must not hang on a dead server, and its loop's pace is the measurement.

Standard library and labkit.engines only: on AWS this file and the strategies run on the lab's instance (onhost.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from labkit.engines import LOST_CONNECTION, READ_ONLY, AuroraEngine
from labkit.errors import LabkitError

TIMEOUT_SECONDS = 2.0
TIMEOUT, UNRESOLVED, NO_WRITER, OTHER = "timeout", "unresolved", "no-writer", "other"
ERROR_KINDS = (READ_ONLY, LOST_CONNECTION, TIMEOUT, UNRESOLVED, NO_WRITER, OTHER)


class NoWriter(Exception):
    """No instance of the cluster says it takes writes (topology-aware: the promotion is still under way)."""


@dataclass
class Cluster:
    """The names an application knows: the cluster's identifier and endpoint, the reader endpoint, each instance's endpoint."""

    identifier: str
    endpoint: str
    reader_endpoint: str
    port: int
    instance_endpoints: dict[str, str]  # DB instance identifier -> its endpoint
    database: str  # the lab schema's database (labkit.lab.resources.database.DATABASE_NAME)


class Address(NamedTuple):
    """Where a name resolved to: the name (the one TLS verifies in the server's certificate) and its address."""

    name: str
    host: str
    port: int


@dataclass
class Attempt:
    failed: bool = False


@dataclass
class App:
    """One strategy's application: its loop calls these; `samples` is what it did, on the run's clock."""

    strategy: str
    cluster: Cluster
    engine: AuroraEngine
    secret: Any
    resolver: Any  # resolve(host, port) -> (address, port): DNS (the sandbox's endpoint map)
    stop: threading.Event
    clock_ns: int  # time.perf_counter_ns() at the run's second 0
    first_probe: int  # this strategy's probe ids start here (one table, distinct ids)
    interval: float = 0.1
    samples: list[dict[str, Any]] = field(default_factory=list)
    trust_store: str | None = None  # the CA bundle that verifies the servers (None: TLS as the driver defaults)

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """What a failed connection or write raises: the driver's errors, the network's, an unresolvable name."""
        return (self.engine.dialect.dbapi.errors(), OSError, LabkitError, NoWriter)

    def running(self) -> bool:
        return not self.stop.is_set()

    def seconds(self) -> float:
        return (time.perf_counter_ns() - self.clock_ns) / 1e9

    def pace(self, seconds: float | None = None) -> None:
        """Wait until the next write is due (or `seconds`), returning early when the run ends."""
        self.stop.wait(self.interval if seconds is None else seconds)

    def resolve(self, host: str) -> Address:
        """Ask DNS where `host` is now (the address a client then connects to, and may cache)."""
        address, port = self.resolver(host, self.cluster.port)
        return Address(host, address, port)

    def connect(self, address: Address) -> Any:
        """A new autocommit connection to an address (not a name: resolving is the strategy's choice), encrypted,
        and verified against the name it was resolved from, as every labkit connection is."""
        tls = (self.trust_store, address.name) if self.trust_store else None
        return self.engine.dialect.dbapi.connect(
            address.host, address.port, self.secret.username, self.secret.password, self.cluster.database,
            connect_timeout=TIMEOUT_SECONDS, timeout=TIMEOUT_SECONDS, tls=tls,
        )  # fmt: skip

    def close(self, connection: Any) -> None:
        """Close a connection that failed (quietly: it may be dead already). Returns None, the connection's new value."""
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def identity(self, connection: Any) -> tuple[str, bool]:
        """(the instance that answered, whether it is read-only), with the engine's identity queries."""
        dialect = self.engine.dialect
        for query in dialect.identity_queries:
            cursor = connection.cursor()
            try:
                cursor.execute(query)
                name, read_only = cursor.fetchone()
                return str(name), bool(int(read_only))
            except dialect.dbapi.errors() as exc:
                if dialect.kind(dialect.error_code(exc)) in (READ_ONLY, LOST_CONNECTION):
                    raise
            finally:
                cursor.close()
        return "?", False

    def write(self, connection: Any) -> None:
        """One write, recorded by the attempt around it: which instance answered, then the INSERT (autocommit)."""
        served_by, _ = self.identity(connection)
        sample = self.samples[-1]
        cursor = connection.cursor()
        try:
            cursor.execute(
                "INSERT INTO bench_failover (probe, served_by) VALUES (%s, %s)", (sample["probe"], served_by)
            )
        finally:
            cursor.close()
        sample.update(acknowledged=True, acked_s=self.seconds(), served_by=served_by)

    @contextlib.contextmanager
    def attempt(self) -> Iterator[Attempt]:
        """One attempt at a write, recorded as a sample: acknowledged, or the error by kind (never raised)."""
        attempt = Attempt()
        probe = self.first_probe + len(self.samples)
        self.samples.append({"strategy": self.strategy, "probe": probe, "sent_s": self.seconds(),
                             "acked_s": float("nan"), "acknowledged": False, "served_by": None,
                             "error_kind": None, "error": None})  # fmt: skip
        try:
            yield attempt
        except self.errors as exc:
            attempt.failed = True
            self.samples[-1].update(error_kind=self.kind(exc), error=f"{type(exc).__name__}: {exc}"[:200])
        self.samples[-1]["done_s"] = self.seconds()

    def kind(self, error: BaseException) -> str:
        """What an error means to the application: refused as read-only, lost connection, timeout, ..."""
        if isinstance(error, NoWriter):
            return NO_WRITER
        if isinstance(error, (LabkitError, socket.gaierror)):
            return UNRESOLVED  # the name answered no address (the sandbox's DNS: no instance behind it; a VPC's)
        if isinstance(error, socket.timeout) or "timed out" in str(error):
            return TIMEOUT
        dialect = self.engine.dialect
        kind = dialect.kind(dialect.error_code(error))
        if kind in (READ_ONLY, LOST_CONNECTION):
            return kind
        return LOST_CONNECTION if isinstance(error, OSError) else OTHER
