"""What a client must know about an engine's connections: its DB-API driver, and what its errors mean.

`labkit.sql` (through SQLAlchemy), the benchmark (raw DB-API connections, so no pool sits inside a sample) and
the web app on the instance all talk to the cluster. The driver, the query that says which instance answered,
and which error codes mean "read-only", "lost the connection", "wrong password" or "no such schema" differ
between engines; everything else in those callers does not. One Dialect subclass per engine lives in the
engine's description module (aurora_mysql.py), so supporting another engine is one more class, not a branch in
every caller.

Standard library only, relative imports (see __init__.py): the drivers themselves are imported on first use.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any, ClassVar

# What an error means to the learner, whatever the engine calls it.
READ_ONLY = "read-only"
LOST_CONNECTION = "lost-connection"
ACCESS_DENIED = "access-denied"
NO_SCHEMA = "no-schema"
OTHER = "other"


# How a driver is told to encrypt and whom to believe (DBAPI.tls): PyMySQL takes an ssl.SSLContext as `ssl`, and
# verifies the name it wraps the socket with; libpq takes sslmode=verify-full, the CA file as sslrootcert, and
# verifies `host` while it dials `hostaddr`. Either way the name verified is the endpoint's, wherever the socket
# goes (a tunnel's local port, the sandbox's 127.0.0.1).
TLS_CONTEXT = "sslcontext"
TLS_LIBPQ = "libpq"


class EndpointContext(ssl.SSLContext):
    """An SSLContext that verifies `server_name`, not the host the driver dialed: through a tunnel the driver dials
    127.0.0.1, but the certificate is the endpoint's (PyMySQL wraps its socket with server_hostname=its host)."""

    server_name: str = ""

    def wrap_socket(self, sock: Any, *args: Any, server_hostname: str | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().wrap_socket(sock, *args, server_hostname=self.server_name or server_hostname, **kwargs)


def verifying_context(ca_file: str, server_name: str) -> ssl.SSLContext:
    """A client context that trusts only `ca_file` and checks the chain and `server_name` (TLS 1.2 or newer)."""
    context = EndpointContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=ca_file)
    context.server_name = server_name
    return context


def libpq_tls(host: str, ca_file: str, server_name: str) -> dict[str, Any]:
    """libpq's connection settings for verify-full against `ca_file` and `server_name`, dialing `host`."""
    dial = {"hostaddr": host} if _is_address(host) and host != server_name else {}
    return {"host": server_name, **dial, "sslmode": "verify-full", "sslrootcert": ca_file}


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class DBAPI:
    """A PEP 249 driver as plain data: what to import, what pip installs, and how its connect() is called.

    Plain data so that a process without labkit can use it too: the web app and the benchmark on the EC2
    instance get it as JSON (`to_dict`) and connect the same way (labkit.app.server.EngineFacts).
    """

    module: str  # what is imported: its connect(), Error, ProgrammingError (PEP 249)
    requirement: str  # what pip installs for it (the instance's user data)
    database_keyword: str = "database"  # connect()'s name for the database
    connect_timeout_keyword: str = "connect_timeout"
    timeout_keywords: tuple[str, ...] = ()  # the read and write timeouts, where the driver has them
    options: Mapping[str, Any] = field(default_factory=_frozen)  # every raw connection: autocommit, charset
    deferred: Mapping[str, Any] = field(default_factory=_frozen)  # connect() later, on a socket the caller dials
    # Where a driver that takes no socket finds a local Unix socket, in the folder given as its host ({port}):
    # how the sandbox's web app hands it a connection the sandbox dialed (labkit.app.server).
    local_socket: str = ""
    tls: str = ""  # how connect() takes TLS settings: TLS_CONTEXT or TLS_LIBPQ

    def tls_arguments(self, host: str, ca_file: str, server_name: str) -> dict[str, Any]:
        """connect()'s keyword arguments that encrypt a connection dialed to `host` and verify the server's
        certificate against `ca_file` and `server_name` (the endpoint's DNS name); they replace `host` where the
        driver verifies the name it dials."""
        if self.tls == TLS_CONTEXT:
            return {"ssl": verifying_context(ca_file, server_name)}
        if self.tls == TLS_LIBPQ:
            return libpq_tls(host, ca_file, server_name)
        raise ValueError(f"the {self.module} driver has no TLS settings")

    def plaintext_arguments(self) -> dict[str, Any]:
        """connect()'s keyword arguments for a connection that does not encrypt (to show a server refusing it)."""
        return {"sslmode": "disable"} if self.tls == TLS_LIBPQ else {"ssl_disabled": True}

    def load(self) -> ModuleType:
        """The driver module (imported on first use: `import labkit` does not pay for it)."""
        return importlib.import_module(self.module)

    def version(self) -> str:
        """The installed distribution's version (a module's own __version__ may be another's: PyMySQL gives
        MySQLdb's, for compatibility); an ImportError when the driver is not installed."""
        from importlib import metadata  # start-up time: read only when a driver's version is asked

        self.load()
        try:
            return metadata.version(re.split(r"[\[<>=!~ ;]", self.requirement, maxsplit=1)[0])
        except metadata.PackageNotFoundError:  # installed some other way (a conda build, a vendored copy)
            return str(getattr(self.load(), "__version__", "?"))

    def errors(self) -> type[Exception]:
        """The base class of every error the driver raises (PEP 249's Error)."""
        return self.load().Error

    def arguments(
        self, host: str, port: int, user: str, password: str, database: str, *, connect_timeout: float, timeout: float
    ) -> dict[str, Any]:
        """connect()'s keyword arguments for one autocommit connection with these timeouts."""
        return {
            "host": host, "port": port, "user": user, "password": password, self.database_keyword: database,
            self.connect_timeout_keyword: connect_timeout, **dict.fromkeys(self.timeout_keywords, timeout),
            **self.options,
        }  # fmt: skip

    def connect(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        database: str,
        *,
        connect_timeout: float,
        timeout: float,
        tls: tuple[str, str] | None = None,
    ) -> Any:
        """One autocommit DB-API connection; with `tls` (the CA file, the name to verify), encrypted and verified."""
        arguments = self.arguments(
            host, port, user, password, database, connect_timeout=connect_timeout, timeout=timeout
        )
        if tls is not None:
            arguments.update(self.tls_arguments(host, *tls))
        return self.load().connect(**arguments)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-able data (what the instance's processes read)."""
        return {
            "module": self.module, "requirement": self.requirement, "database_keyword": self.database_keyword,
            "connect_timeout_keyword": self.connect_timeout_keyword, "timeout_keywords": list(self.timeout_keywords),
            "options": dict(self.options), "deferred": dict(self.deferred), "local_socket": self.local_socket,
            "tls": self.tls,
        }  # fmt: skip


class Dialect(ABC):
    """One engine as a client sees it. Subclasses fill in the class attributes; instances are stateless."""

    engine: ClassVar[str]  # the RDS `Engine` value this dialect talks to
    server: ClassVar[str]  # how messages name the server ("MySQL")
    driver: ClassVar[str]  # the SQLAlchemy driver name for URL.create
    connect_args: ClassVar[Mapping[str, Any]]  # passed to the DB-API driver's connect() by SQLAlchemy
    dbapi: ClassVar[DBAPI]  # the same driver for raw connections (the benchmark, the web app)
    identity_queries: ClassVar[tuple[str, ...]]  # (instance name, read-only flag), tried in order until one works
    read_only_errors: ClassVar[frozenset[Any]]
    lost_connection_errors: ClassVar[frozenset[Any]]
    access_denied_errors: ClassVar[frozenset[Any]]
    no_schema_errors: ClassVar[frozenset[Any]]
    missing_parent_errors: ClassVar[frozenset[Any]] = frozenset()  # a foreign key names no row
    # Reading your own writes on a reader (Aurora's aurora_replica_read_consistency = SESSION): the writer's
    # replication position after a commit, and a bounded wait until a replica has applied it. Empty where the
    # engine's replicas offer neither; reads on a reader are then eventual, as Aurora's are by default.
    position_query: ClassVar[str] = ""
    wait_query: ClassVar[str] = ""  # named parameters :position and :seconds
    # Failed connections whose driver gives no code (libpq's): a fragment of the error's text and the code it
    # means, read by error_code here and by the web app on the instance (which cannot import labkit).
    connect_failures: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    # How a client learns the key of the row an INSERT made: the cursor's "lastrowid" (MySQL's LAST_INSERT_ID),
    # or "returning" (the INSERT gets a RETURNING clause and the key comes back as its one row).
    new_row_id: ClassVar[str] = "lastrowid"

    @abstractmethod
    def error_code(self, error: BaseException | None) -> Any:
        """The engine's code for a DB-API error (0 when it carries none)."""

    @abstractmethod
    def error_message(self, error: BaseException | None, fallback: str = "") -> str:
        """The server's own words for a DB-API error (`fallback` when it carries none)."""

    def code_in_text(self, text: str) -> Any:
        """The engine's code in an error as the driver prints it (a failed benchmark sample keeps only its text);
        0 when the text carries none."""
        return 0

    def kind(self, code: Any) -> str:
        """What an error code means to the learner: READ_ONLY, LOST_CONNECTION, ACCESS_DENIED, NO_SCHEMA or OTHER."""
        for kind, codes in (
            (READ_ONLY, self.read_only_errors),
            (LOST_CONNECTION, self.lost_connection_errors),
            (ACCESS_DENIED, self.access_denied_errors),
            (NO_SCHEMA, self.no_schema_errors),
        ):
            if code in codes:
                return kind
        return OTHER

    def __repr__(self) -> str:
        return f"<{type(self).__name__} dialect for {self.engine}>"
