"""The data-plane interface: what the reconciler needs from a database engine, and the registry that picks one.

Runs in the daemon (the reconciler drives servers through this interface only) and in the client (`up` asks
the lab's engine whether it is installed before starting anything). An engine is chosen by the `Engine` of the
Aurora cluster in the control plane, through that engine's description (labkit.engines: its
`setup.server_engine`; Aurora MySQL's is MariaDB). A second engine is one new module in this package: a
`DatabaseEngine` subclass decorated with `@register`; `engine_class` finds it on first use.

The interface speaks in Aurora's roles, not in one server's commands: a cluster's first writer is bootstrapped,
readers replicate from the writer, and a failover fences the old writer and promotes the new one.

Its promise is Aurora's: no acknowledged write is lost. Aurora keeps every acknowledged commit on a shared
volume that outlives the writer; in the sandbox each server has its own data directory, all on this machine, so:
a server never takes writes until it is promoted (a writer restarted after a crash holds every commit it
acknowledged, and says where with `position`); a promotion first applies everything up to a position and
refuses (`promote` raises) when it cannot; a replica that can never continue (`replication_state` BROKEN) is
rebuilt from the writer; and while its cluster has a healthy replica, the writer acknowledges a commit only once
a replica has it (`require_replica_ack`), as a second copy for when the writer's own data cannot be read.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import shutil
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from labkit.engines import DEFAULT_ENGINE, described  # DEFAULT_ENGINE: `up` checks it is installed first
from labkit.errors import SandboxError

# What a replica's replication is doing (DatabaseServer.replication_state).
REPLICATING = "replicating"  # it receives and applies the writer's changes
CONNECTING = "connecting"  # not yet (or the writer is restarting): it keeps trying on its own
STOPPED = "stopped"  # nothing runs and nothing failed: point it at the writer again
BROKEN = "broken"  # it can never continue from here (its history diverged, or applying failed): rebuild it
# The files of a server's certificate, in the folder each engine keeps them (its data directory).
TLS_CERT, TLS_KEY, TLS_CA = "labkit-server.pem", "labkit-server.key", "labkit-ca.pem"


class StatusConnection:
    """A connection kept for one server's read-only status queries: the reconciler asks every few seconds, and a
    new connection costs far more than the query (about 25 ms of CPU here against 0.25 ms on MariaDB). One
    query at a time; a connection the server dropped (it restarted) is made again once.

    `connect()` opens it; `first_row(connection, query)` runs a query and returns its first row as a dict;
    `dropped` are the driver's errors that mean the connection is gone."""

    def __init__(
        self,
        connect: Callable[[], Any],
        first_row: Callable[[Any, str], dict[str, Any] | None],
        dropped: tuple[type[BaseException], ...],
    ) -> None:
        self._connect, self._first_row, self._dropped = connect, first_row, dropped
        self._connection: Any = None
        self._lock = threading.Lock()

    def first_row(self, query: str) -> dict[str, Any] | None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._connection is None:
                        self._connection = self._connect()
                    return self._first_row(self._connection, query)
                except self._dropped:
                    self._close()
                    if attempt == 2:
                        raise
        return None

    def forget(self) -> None:
        """Close it (the server stopped or is being removed): the next query connects anew."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


class DatabaseServer(ABC):
    """One database server process standing in for one Aurora DB instance."""

    name: str  # the DB instance identifier; the server names itself so (see DatabaseEngine.identity_sql)
    datadir: Path
    port: int  # the local port it listens on (127.0.0.1)
    server_id: int  # unique among the sandbox's servers (replication needs it)
    # TLS, as on Aurora: every server presents a certificate from the home's CA (labkit.sandbox.tls) for the
    # endpoint names the reconciler sets here before a start; `secure_transport` is what the cluster's parameter
    # group says (require_secure_transport / rds.force_ssl), applied from the start and by require_secure_transport.
    tls_names: tuple[str, ...] = ()
    tls_root: Path | None = None  # the home's data folder, where its CA lives (the engine's prepare sets it)
    secure_transport: bool = False

    def certificate_files(self, folder: Path) -> tuple[Path, Path, Path]:
        """The server's certificate, key and CA certificate, written into `folder` (owner-only) when missing, for
        other names, or near their end: so a server of an older data directory gets them at its start."""
        from labkit.sandbox import tls  # cryptography: only the daemon, when a server starts

        certificate, key, ca = folder / TLS_CERT, folder / TLS_KEY, folder / TLS_CA
        made = tls.server_certificate(self.tls_root or self.datadir.parent.parent, self.tls_names, previous=certificate)
        for path, data in ((key, made.key), (certificate, made.certificate), (ca, made.ca)):
            if not path.exists() or path.read_bytes() != data:
                tls.write_private(path, data)
        return certificate, key, ca

    @abstractmethod
    def require_secure_transport(self, required: bool) -> None:
        """Refuse client connections without TLS from now on (or accept them again), as the cluster parameter
        group's require_secure_transport (Aurora MySQL) or rds.force_ssl (Aurora PostgreSQL) does on Aurora."""

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """The server process's pid (None before start and after stop)."""

    @abstractmethod
    def exited(self) -> bool:
        """True when the process was started and has since exited (crashed or killed): Aurora would notice."""

    @abstractmethod
    def replication_state(self) -> str:
        """On a replica: REPLICATING, CONNECTING, STOPPED or BROKEN (see the constants above)."""

    def replicating(self) -> bool:
        """On a replica: it receives and applies the writer's changes."""
        return self.replication_state() == REPLICATING

    @abstractmethod
    def caught_up_position(self) -> str | None:
        """On a replica: everything it has received from the writer (what a promotion must apply first)."""

    @abstractmethod
    def position(self) -> str:
        """Everything this server has committed, its own writes and what it applied, as a position `holds` and
        `promote` take. On a writer restarted after a crash: at least every commit it ever acknowledged."""

    @abstractmethod
    def holds(self, position: str) -> bool:
        """True when this server has applied everything up to `position` (answers at once, never waits)."""

    @abstractmethod
    def start(self) -> None:
        """Start the process, from the engine's template when it has no data yet; return at once (see
        wait_ready). A started server takes no writes until `promote`, whatever it was before."""

    @abstractmethod
    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until it accepts connections; a SandboxError naming its log when it exits or times out."""

    @abstractmethod
    def bootstrap_writer(
        self, master_user: str, master_password: str, database: str | None, repl_password: str
    ) -> None:
        """A cluster's first writer: accept writes, create the master user, the initial database and replication."""

    @abstractmethod
    def set_password(self, user: str, password: str) -> None:
        """On the writer: give the learner's `user` a new password (replicated to readers, never as text)."""

    @abstractmethod
    def replicate_from(self, writer_port: int, repl_password: str) -> None:
        """Become a read-only replica of the writer listening on `writer_port`, continuing from what it holds."""

    @abstractmethod
    def require_replica_ack(self, required: bool) -> None:
        """On the writer: whether a commit is acknowledged only once a replica has it. The reconciler requires it
        while the cluster has a healthy replica, and lifts it when none is left (a cluster of one instance, or
        its replicas restarting), so the writer never waits for a replica that is not coming."""

    @abstractmethod
    def replication_source_port(self) -> int | None:
        """The port of the server it replicates from (None for a writer)."""

    @abstractmethod
    def fence(self) -> str:
        """Stop taking writes (the old writer in a failover); returns its last replication position."""

    @abstractmethod
    def promote(self, catch_up_to: str | None, timeout: float = 10.0) -> None:
        """Become the writer: apply everything up to `catch_up_to`, stop replicating, accept writes. When it cannot
        apply all of it within `timeout`, raise a SandboxError and stay a replica (never take writes without it)."""

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process, keeping its data."""

    @abstractmethod
    def remove(self) -> None:
        """Stop the process and delete its data (the DB instance was deleted in the control plane)."""


class DatabaseEngine(ABC):
    """One database engine's data plane: where its programs are, its template, and a server per DB instance."""

    rds_engines: ClassVar[tuple[str, ...]]  # the keys it serves: its server engine name, and cluster `Engine` values
    default_port: ClassVar[int]  # the endpoint port when a cluster names none (as RDS's default for the engine)
    identity_sql: ClassVar[str]  # answers the DB instance identifier: how a client tells writer from reader

    @abstractmethod
    def check_installed(self) -> None:
        """Raise a SandboxError with install steps when the engine's server programs are missing, or are not the
        engine's (each is run once with `check_program`)."""

    def version(self) -> str:
        """What the environment report says of the installed server (a SandboxError when it is missing)."""
        self.check_installed()
        return "installed"

    @abstractmethod
    def prepare(self, data_root: Path, admin_password: str, repl_password: str) -> None:
        """Make what every new server starts from (an initialised data directory); idempotent and thread-safe.

        Its only accounts are the hidden admin and the replication user, each with its own password, made outside
        any log a learner can read; nothing in `data_root` is readable by another local user.
        """

    @abstractmethod
    def server(
        self, name: str, datadir: Path, port: int, server_id: int, admin_password: str, repl_password: str
    ) -> DatabaseServer:
        """A server for DB instance `name` (not started); call `prepare` first."""

    def release(self, data_root: Path) -> None:  # noqa: B027 (a hook: most engines keep nothing outside the home)
        """Remove what the engine keeps outside `data_root` while servers run; called once every server stopped."""


_passed: dict[tuple[object, ...], str] = {}  # programs this process found to be the engine's, by file identity


def _identity(command: list[str]) -> tuple[object, ...] | None:
    """The command with its program file's identity (device, inode, size, modification time): the same file,
    unchanged, gives the same answer. None when the program cannot be found (it is run, and its error reported)."""
    found = command[0] if os.sep in command[0] else shutil.which(command[0])
    try:
        info = os.stat(found) if found else None
    except OSError:
        return None
    return (tuple(command), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) if info else None


def check_program(command: list[str], expect: str, *, field: str, fix: str, timeout: float = 10.0) -> str:
    """Run an engine program's version query (`command`) and return the first line it prints, checked to name
    `expect`: a program that cannot run, fails, hangs or prints something else (/bin/false, an empty script, another
    server) is not the engine's, and would otherwise be found out only when a lab's first database fails to start.
    Each engine calls it from `check_installed` for the programs it runs. A program file that passed once in this
    process is not run again until it changes (`sandbox up` checks before each start: 20-30 ms a time)."""
    identity = _identity(command)
    if identity in _passed:
        return _passed[identity]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"{command[0]} cannot be run: {exc}", field=field, fix=fix) from None
    printed = (done.stdout.strip() or done.stderr.strip()).splitlines()
    first = printed[0].strip() if printed else ""
    if done.returncode == 0 and expect.lower() in first.lower():
        if identity is not None:
            _passed[identity] = first
        return first
    if done.returncode != 0:
        what = f"exited with code {done.returncode}"
    else:
        what = f"printed {first[:120]!r}" if first else "printed nothing"
    raise SandboxError(
        f"{command[0]} is not {expect}'s server: `{' '.join([command[0], *command[1:]])}` {what}",
        field=field,
        fix=fix,
    )


_registry: dict[str, type[DatabaseEngine]] = {}


def wait_accepting(
    server: Any, timeout: float, *, program: str, log: Path, refused: type[Exception], poll: float
) -> None:
    """Block until `server.admin()` connects (and close that connection): a SandboxError naming `program` and its
    `log` as soon as the process exits, or when `timeout` passes. Both engines wait so; only what a refused
    connection raises and how often to ask differ."""
    deadline = time.monotonic() + timeout
    while True:
        process = server.process
        if process and process.poll() is not None:
            raise SandboxError(
                f"{program} for {server.name} exited with code {process.returncode}: {server.error_tail()}",
                field=server.name,
                fix=f"see {log}",
            )
        try:
            server.admin().close()
            return
        except refused:
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"{program} for {server.name} did not accept connections within {timeout:.0f} s",
                    field=server.name,
                    fix=f"see {log}",
                ) from None
            time.sleep(poll)


def register(cls: type[DatabaseEngine]) -> type[DatabaseEngine]:
    """Class decorator: `cls` serves every cluster engine in `cls.rds_engines`."""
    for name in cls.rds_engines:
        _registry[name] = cls
    return cls


def _load_engine_modules() -> None:
    """Import every module of this package once; each registers its engine as it is imported."""
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if module.name != "base":
            importlib.import_module(f"{package}.{module.name}")


def engine_class(rds_engine: str) -> type[DatabaseEngine]:
    """The data-plane engine for an Aurora cluster's `Engine` (the server engine its description names), or a
    SandboxError saying which the sandbox runs."""
    description = described(rds_engine)
    key = description.setup.server_engine if description else rds_engine
    if key not in _registry:
        _load_engine_modules()
    if key not in _registry:
        known = ", ".join(sorted(_registry)) or "none"
        raise SandboxError(
            f"the sandbox has no database engine for {rds_engine!r}",
            field="Engine",
            fix=f"create the cluster with one of the engines the sandbox runs: {known}",
        )
    return _registry[key]


def check_installed(rds_engine: str = DEFAULT_ENGINE) -> None:
    """Fail fast, with install steps, when the server programs of `rds_engine` are missing."""
    engine_class(rds_engine)().check_installed()
