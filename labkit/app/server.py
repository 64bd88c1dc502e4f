"""The lab's web app: a small shop on the EC2 instance, with Aurora as its data layer.

It lists the latest orders (read through the cluster's reader endpoint, or the writer's when
LABKIT_APP_READS_FROM=writer) and has a form that adds one (written through the cluster endpoint, i.e. the
writer). At start-up it looks up the cluster's endpoints and its managed secret with the instance role, then
reads the master password from Secrets Manager; the password is never put in a page, a log line or an error.
Input is validated and bound as SQL parameters, every value on the page is HTML-escaped; the page says which
instance served its read, and /health whether writer and reader answer and which instance each reached.

This file is self-contained (standard library, boto3 and its engine's DB-API driver) because EC2 user data
copies it alone onto the instance, which runs it with Amazon Linux's Python 3.9 as a systemd service on
127.0.0.1:8080: only a Session Manager port-forward reaches it, no inbound rule is opened. What it must know
of its database engine (the driver and how to call it, the error codes it acts on, the query that says which
instance answered) comes from its environment, LABKIT_APP_ENGINE (JSON), which the user data renders from labkit's
engine description. The sandbox runs the very same file with the same environment, passing `dial` so that
connections go through the sandbox's network (which applies the security groups) instead of DNS, and `relay` for
a driver that cannot connect on a socket it is given (libpq).

    LABKIT_APP_CLUSTER=lab-x-cluster LABKIT_APP_REGION=us-east-1 LABKIT_APP_ENGINE='{...}' python3 server.py

Settings (environment, written by user data to /etc/labkit-app.env): LABKIT_APP_CLUSTER, LABKIT_APP_REGION, LABKIT_APP_ENGINE,
LABKIT_APP_DATABASE, LABKIT_APP_BIND, LABKIT_APP_PORT, LABKIT_APP_READS_FROM (reader or writer).
"""

from __future__ import annotations

import hmac
import html
import importlib
import json
import logging
import os
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

APP_PORT = 8080
MAX_BODY = 8192
CUSTOMER_MAX = 80
QUANTITY_RANGE = (1, 100)
ORDERS_SHOWN = 20
RETRY_SETUP_SECONDS = 5.0
MAX_CONNECTIONS = 32  # requests served at once; more wait in no thread, they get 503 at once
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request (a held connection is dropped)
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
ENDPOINTS = ("writer", "reader")  # the cluster endpoint (the writer) and the reader endpoint
HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]
Dial = Callable[[str, int, float], socket.socket]
Relay = Callable[[socket.socket, float], tuple[str, int]]  # (dialed, timeout) -> a loopback address piped to it
log = logging.getLogger("shop")


def tls_arguments(style: str, host: str, ca_file: str, server_name: str) -> dict[str, Any]:
    """The driver's TLS settings, verifying the chain and `server_name` (labkit.engines.dialect does the same for
    labkit's own connections). The MySQL driver verifies the host it is given, here always the endpoint's name;
    libpq verifies `host` and dials `hostaddr` (the sandbox's relay)."""
    if style == "libpq":
        dial = {"hostaddr": host} if host != server_name else {}
        return {"host": server_name, **dial, "sslmode": "verify-full", "sslrootcert": ca_file}
    return {"ssl_ca": ca_file, "ssl_verify_identity": True}


class BadSettings(ValueError):
    """A setting is missing or not valid: the app says which and stops (systemd then shows the message)."""


@dataclass(frozen=True)
class Settings:
    """Where the app finds its cluster, what engine it runs, and where it listens (from the environment user
    data writes)."""

    cluster: str
    region: str
    database: str = "shop"
    bind: str = "127.0.0.1"
    port: int = APP_PORT
    engine: str = ""  # EngineFacts as JSON (LABKIT_APP_ENGINE); only discover() works without it
    reads_from: str = "reader"  # the endpoint the page reads through: "reader" (replicas) or "writer"
    # The RDS CA bundle (user data downloads it): every connection is TLS, verifying the certificate's chain and
    # the endpoint's name. Empty: no TLS (a cluster that requires it refuses the app, and the page says so).
    ca_file: str = ""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [k for k in ("LABKIT_APP_CLUSTER", "LABKIT_APP_REGION", "LABKIT_APP_ENGINE") if not env.get(k)]
        if missing:
            raise BadSettings(f"set {' and '.join(missing)} (EC2 user data writes them to /etc/labkit-app.env)")
        reads_from = env.get("LABKIT_APP_READS_FROM") or "reader"
        if reads_from not in ENDPOINTS:
            raise BadSettings(f"LABKIT_APP_READS_FROM={reads_from!r}: set it to reader or writer")
        return cls(
            cluster=env["LABKIT_APP_CLUSTER"],
            region=env["LABKIT_APP_REGION"],
            database=env.get("LABKIT_APP_DATABASE", "shop"),
            bind=env.get("LABKIT_APP_BIND", "127.0.0.1"),
            port=int(env.get("LABKIT_APP_PORT", str(APP_PORT))),
            engine=env["LABKIT_APP_ENGINE"],
            reads_from=reads_from,
            ca_file=env.get("LABKIT_APP_CA_FILE", ""),
        )


@dataclass(frozen=True)
class EngineFacts:
    """What the app must know of its database engine: rendered by labkit from its engine description
    (labkit.engines, AuroraEngine.app_facts) into LABKIT_APP_ENGINE, since this file imports nothing of labkit."""

    engine: str  # the cluster's RDS engine
    port: int  # its default port (a cluster described without one)
    server: str  # how an error names the server
    driver: dict[str, Any]  # the DB-API driver: its module and how its connect() is called (labkit.engines.DBAPI)
    identity: tuple[str, ...]  # (instance name, read-only flag): tried in order until one works
    access_denied: tuple[Any, ...]  # the login was refused (a rotated secret: read it again)
    no_table: tuple[Any, ...]  # the schema is not there yet
    no_parent: tuple[Any, ...]  # a foreign key names no row (no such product)
    connect_failures: dict[str, Any] = field(default_factory=dict)  # a failed connection's words -> its code
    new_row_id: str = "lastrowid"  # or "returning": the INSERT returns the new key (INSERT ... RETURNING id)

    @classmethod
    def from_json(cls, text: str) -> EngineFacts:
        data = json.loads(text)
        return cls(
            engine=data["engine"], port=int(data["port"]), server=data["server"], driver=data["driver"],
            identity=tuple(data["identity"]), access_denied=tuple(data["access_denied"]), no_table=tuple(data["no_table"]),
            no_parent=tuple(data["no_parent"]), connect_failures=dict(data.get("connect_failures") or {}),
            new_row_id=data.get("new_row_id") or "lastrowid",
        )  # fmt: skip

    def module(self) -> Any:
        """The driver (imported on first use: a missing driver fails a request, not the service)."""
        return importlib.import_module(self.driver["module"])

    def code(self, exc: BaseException) -> Any:
        """A driver error's code: its number, else its SQLSTATE, else what a failed connection's words mean
        (libpq). The number first: a driver's errors may carry both, and an engine's facts name numbers if its
        errors have them (a refused login read by its SQLSTATE was never known, so no secret was read again)."""
        args = getattr(exc, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
        state = getattr(exc, "sqlstate", None)
        if state:
            return state
        text = str(exc)
        return next((code for words, code in self.connect_failures.items() if words in text), None)

    def connect(
        self, host: str, port: int, user: str, password: str, database: str, *, connect_timeout: float,
        timeout: float, deferred: bool = False, tls: tuple[str, str] | None = None,
    ) -> Any:  # fmt: skip
        """One autocommit connection; `deferred`: not yet connected, for connection.connect(socket); `tls` (the CA
        file, the endpoint's name): encrypted, the certificate's chain and that name verified (labkit.engines.dialect
        does the same for labkit's own)."""
        driver = self.driver
        arguments = {
            "host": host, "port": port, "user": user, "password": password, driver["database_keyword"]: database,
            driver["connect_timeout_keyword"]: connect_timeout, **dict.fromkeys(driver["timeout_keywords"], timeout),
            **driver["options"], **(driver["deferred"] if deferred else {}),
        }  # fmt: skip
        if tls is not None:
            arguments.update(tls_arguments(driver.get("tls", ""), host, *tls))
        return self.module().connect(**arguments)


@dataclass(frozen=True)
class Cluster:
    """What the app connects to: the two endpoints and the login from the cluster's secret."""

    writer: str
    reader: str
    port: int
    username: str
    password: str = field(repr=False)


def discover(settings: Settings) -> Cluster:
    """The cluster's endpoints (rds:DescribeDBClusters) and login (secretsmanager:GetSecretValue)."""
    import boto3  # shipped standalone: if it is missing, the page says so (NotReady) and the service lives on

    rds = boto3.client("rds", region_name=settings.region)
    found = rds.describe_db_clusters(DBClusterIdentifier=settings.cluster)["DBClusters"][0]
    secret_arn = (found.get("MasterUserSecret") or {}).get("SecretArn")
    if not secret_arn:
        raise RuntimeError(f"cluster {settings.cluster} has no managed master secret")
    secrets_client = boto3.client("secretsmanager", region_name=settings.region)
    value = json.loads(secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"])
    return Cluster(
        writer=found["Endpoint"],
        reader=found.get("ReaderEndpoint") or found["Endpoint"],
        port=int(found.get("Port") or EngineFacts.from_json(settings.engine).port),
        username=value.get("username") or found["MasterUsername"],
        password=value["password"],
    )


class NotReady(Exception):
    """The cluster could not be looked up yet (it may still be creating)."""


@dataclass(frozen=True)
class Served:
    """What one connection to an endpoint answered: the instance behind it, whether that instance is
    read-only (a replica), and the rows of each statement."""

    instance: str
    read_only: bool
    rows: list[list[tuple[Any, ...]]]


class Database:
    """Short connections per request: the endpoints' DNS moves with a failover, a pooled one would not."""

    def __init__(
        self,
        settings: Settings,
        discover: Callable[[Settings], Cluster] = discover,
        dial: Dial | None = None,
        connect_timeout: float = 3.0,
        relay: Relay | None = None,
    ) -> None:
        self.settings = settings
        self.facts = EngineFacts.from_json(settings.engine)
        self._discover = discover
        self.dial, self.relay = dial, relay
        self.connect_timeout = connect_timeout
        self._cluster: Cluster | None = None
        self._identity_sql = self.facts.identity[0]
        self._failed_at = 0.0
        self._failure = ""
        self._lock = threading.Lock()

    def cluster(self) -> Cluster:
        """Looked up once; after a failure, again at most every few seconds."""
        with self._lock:
            if self._cluster is None:
                if time.monotonic() - self._failed_at < RETRY_SETUP_SECONDS and self._failure:
                    raise NotReady(self._failure)
                try:
                    self._cluster = self._discover(self.settings)
                except Exception as exc:  # the page says why; the service keeps running
                    self._failed_at, self._failure = time.monotonic(), _one_line(exc)
                    raise NotReady(self._failure) from None
            return self._cluster

    def connect(self, endpoint: str) -> Any:
        try:
            return self._connect(endpoint, self.cluster())
        except self.facts.module().Error as exc:
            if self.facts.code(exc) not in self.facts.access_denied:
                raise
        # RDS rotates a managed secret (every 7 days by default): read it again and try once more
        with self._lock:
            self._cluster = None
        return self._connect(endpoint, self.cluster())

    def _connect(self, endpoint: str, cluster: Cluster) -> Any:
        host = cluster.writer if endpoint == "writer" else cluster.reader
        login = (cluster.username, cluster.password, self.settings.database)
        tls = (self.settings.ca_file, host) if self.settings.ca_file else None  # the endpoint's name is verified
        if self.dial is None:  # on the instance: the endpoint's DNS name, as any application connects
            return self.facts.connect(
                host, cluster.port, *login, connect_timeout=self.connect_timeout, timeout=10, tls=tls
            )
        dialed = self.dial(host, cluster.port, self.connect_timeout)  # the sandbox's network: the rules decide here
        if self.facts.driver.get("deferred"):
            connection = self.facts.connect(
                host, cluster.port, *login, connect_timeout=self.connect_timeout, timeout=10, deferred=True, tls=tls
            )
            connection.connect(dialed)
            return connection
        address, port = self.relay(dialed, self.connect_timeout)  # a driver that takes no socket (libpq)
        return self.facts.connect(address, port, *login, connect_timeout=self.connect_timeout, timeout=10, tls=tls)

    def read(self, statements: list[tuple[str, tuple[Any, ...]]]) -> Served:
        """Reads go through the reader endpoint, which spreads new connections over the replicas, or through
        the writer's when LABKIT_APP_READS_FROM=writer (read-your-writes, at the writer's expense)."""
        return self.run(self.settings.reads_from, statements)

    def write(self, statement: str, params: tuple[Any, ...]) -> int:
        """Writes always go through the cluster endpoint, which follows the writer through a failover."""
        return self.execute("writer", statement, params)

    def run(self, endpoint: str, statements: list[tuple[str, tuple[Any, ...]]]) -> Served:
        """The statements on one new connection to `endpoint`, and which instance answered it."""
        connection = self.connect(endpoint)
        try:
            with connection.cursor() as cursor:
                instance, read_only = self._identity(cursor)
                rows = []
                for statement, params in statements:
                    cursor.execute(statement, params)
                    rows.append(list(cursor.fetchall()))
                return Served(instance, read_only, rows)
        finally:
            connection.close()

    def _identity(self, cursor: Any) -> tuple[str, bool]:
        """(instance name, read-only) of the server behind `cursor`; the query that worked is kept."""
        identity = self.facts.identity
        for query in dict.fromkeys((self._identity_sql, *identity)):
            try:
                cursor.execute(query)
            except self.facts.module().Error:
                if query == identity[-1]:
                    raise
                continue
            self._identity_sql = query
            name, read_only = cursor.fetchone()
            return str(name), bool(int(read_only))
        raise AssertionError("unreachable")  # pragma: no cover - the last query raises

    def execute(self, endpoint: str, statement: str, params: tuple[Any, ...] = ()) -> int:
        """Run one INSERT; returns the key the database gave the new row (its `id`)."""
        returning = self.facts.new_row_id == "returning"
        connection = self.connect(endpoint)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement + " RETURNING id" if returning else statement, params)
                return int((cursor.fetchone()[0] if returning else cursor.lastrowid) or 0)
        finally:
            connection.close()


# ----- the shop's SQL: every value from a request is a bound parameter -----
ORDERS_SQL = (
    "SELECT o.id, o.created_at, o.customer, p.name, o.quantity FROM orders o "
    "JOIN products p ON p.id = o.product_id ORDER BY o.id DESC LIMIT %s"
)
PRODUCTS_SQL = "SELECT id, name FROM products ORDER BY id"
INSERT_SQL = "INSERT INTO orders (product_id, customer, quantity) VALUES (%s, %s, %s)"


@dataclass(frozen=True)
class Order:
    product_id: int
    customer: str
    quantity: int


def validate(form: dict[str, str]) -> tuple[Order | None, dict[str, str]]:
    """The order a form describes, or the problem with each bad field."""
    errors: dict[str, str] = {}
    customer = " ".join(form.get("customer", "").split())
    if not customer:
        errors["customer"] = "Enter the customer's name."
    elif len(customer) > CUSTOMER_MAX:
        errors["customer"] = f"Use at most {CUSTOMER_MAX} characters."
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in customer):
        errors["customer"] = "Use letters, digits and punctuation only."
    product_id = _int(form.get("product_id", ""))
    if product_id is None or product_id < 1:
        errors["product_id"] = "Choose a product."
    quantity = _int(form.get("quantity", ""))
    low, high = QUANTITY_RANGE
    if quantity is None or not low <= quantity <= high:
        errors["quantity"] = f"Enter a whole number from {low} to {high}."
    if errors:
        return None, errors
    assert product_id is not None and quantity is not None
    return Order(product_id, customer, quantity), {}


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _one_line(exc: BaseException, server: str = "database") -> str:
    """An error for the page: its class and first line, never a password (none is ever put in one)."""
    args = getattr(exc, "args", ())
    if len(args) == 2 and isinstance(args[0], int):  # a driver's (code, message)
        return f"{server} error {args[0]}: {args[1]}"
    if isinstance(exc, OSError) and args and isinstance(args[0], str):
        return args[0].splitlines()[0]  # a network error says what it is
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# ----- HTML -----
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:46rem;color:#222}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}"
    ".note{background:#eef6ff;padding:.5rem}.bad{background:#fde8e8;padding:.5rem}.err{color:#b00}"
    "label{display:block;margin:.4rem 0}"
)


def render_page(
    orders: list[tuple[Any, ...]],
    products: list[tuple[Any, ...]],
    token: str,
    *,
    notice: str = "",
    problem: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    reads_from: str = "reader",
    served_by: str = "",
) -> str:
    """The shop page. Every value is escaped here, whatever its origin."""
    e, errors, values = html.escape, errors or {}, values or {}

    def error(name: str) -> str:
        return f' <span class="err" id="{name}-error">{e(errors[name])}</span>' if name in errors else ""

    rows = "".join(
        f"<tr><td>{e(str(oid))}</td><td>{e(str(at))}</td><td>{e(str(customer))}</td>"
        f"<td>{e(str(product))}</td><td>{e(str(quantity))}</td></tr>"
        for oid, at, customer, product, quantity in orders
    )
    chosen = values.get("product_id", "")
    options = "".join(
        f'<option value="{e(str(pid))}"{" selected" if str(pid) == chosen else ""}>{e(str(name))}</option>'
        for pid, name in products
    )
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Lab shop</title>",
        f"<style>{STYLE}</style></head><body><h1>Lab shop</h1>",
        f"<p>Orders are read through the cluster's <b>{e(reads_from)}</b> endpoint; new ones are written to the "
        "<b>writer</b> (the cluster endpoint).</p>",
    ]
    if served_by:
        parts.append(
            f'<p id="served">This page was read from <b id="served-by">{e(served_by)}</b> through the '
            f"{e(reads_from)} endpoint.</p>"
        )
    if notice:
        parts.append(f'<p class="note" id="notice">{e(notice)}</p>')
    if problem:
        parts.append(f'<p class="bad" id="problem">{e(problem)}</p>')
    parts += [
        '<h2>Add an order</h2><form method="post" action="/orders">',
        f'<input type="hidden" name="token" value="{e(token)}">',
        f'<label>Customer <input name="customer" maxlength="{CUSTOMER_MAX}" value="{e(values.get("customer", ""))}">'
        f"{error('customer')}</label>",
        f'<label>Product <select name="product_id">{options}</select>{error("product_id")}</label>',
        f'<label>Quantity <input name="quantity" type="number" min="{QUANTITY_RANGE[0]}" max="{QUANTITY_RANGE[1]}" '
        f'value="{e(values.get("quantity", "1"))}">{error("quantity")}</label>',
        '<button type="submit">Add order</button></form>',
        f"<h2>Latest orders</h2><table id=orders><tr><th>#</th><th>when</th><th>customer</th><th>product</th>"
        f"<th>qty</th></tr>{rows}</table></body></html>",
    ]
    return "".join(parts)


# ----- the WSGI application -----
class ShopApp:
    """GET / (the page), POST /orders (add one), GET /health (writer and reader reachability, JSON)."""

    def __init__(self, db: Database, token: str | None = None, hosts: frozenset[str] | None = None) -> None:
        self.db = db
        self.token = token or secrets.token_urlsafe(24)  # the form's anti-forgery token, per process
        self.hosts = own_names() if hosts is None else hosts

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if not host_allowed(environ.get("HTTP_HOST", ""), self.hosts):  # DNS rebinding: a page at evil.example
            return _respond(start_response, "421 Misdirected Request", "text/plain", "unknown host\n")
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        routes = {"/": ("GET", self.page), "/orders": ("POST", self.add), "/health": ("GET", self.health)}
        if path not in routes:
            return _respond(start_response, "404 Not Found", "text/plain", "not found\n")
        allowed, handler = routes[path]
        if method != allowed and not (method == "HEAD" and allowed == "GET"):
            return _respond(start_response, "405 Method Not Allowed", "text/plain", "method not allowed\n",
                            [("Allow", allowed)])  # fmt: skip
        return handler(environ, start_response)

    # -- pages --
    def page(self, environ: dict[str, Any], start_response: Callable[..., Any], **form: Any) -> list[bytes]:
        status = form.pop("status", "200 OK")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        added = _int((query.get("added") or [""])[0])
        reads_from = self.db.settings.reads_from
        try:
            served = self.db.read([(ORDERS_SQL, (ORDERS_SHOWN,)), (PRODUCTS_SQL, ())])  # one connection, one instance
        except Exception as exc:
            return _respond(start_response, "503 Service Unavailable", "text/html",
                            render_page([], [], self.token, problem=self._explain(exc), reads_from=reads_from))  # fmt: skip
        orders, products = served.rows
        notice = form.pop("notice", "")
        if added is not None and not notice:
            if any(row[0] == added for row in orders):
                notice = f"Order {added} was added on the writer and is now visible on the reader."
            else:
                notice = (
                    f"Order {added} was added on the writer; the reader does not show it yet "
                    "(replica lag is usually milliseconds). Reload the page."
                )
        body = render_page(orders, products, self.token, notice=notice, reads_from=reads_from,
                           served_by=served.instance, **form)  # fmt: skip
        return _respond(start_response, status, "text/html", body)

    def add(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = _int(environ.get("CONTENT_LENGTH") or "0")
        if length is None or length > MAX_BODY:
            return _respond(start_response, "413 Payload Too Large", "text/plain", "form too large\n")
        raw = environ["wsgi.input"].read(length).decode("utf-8", errors="replace")
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        if not hmac.compare_digest(form.get("token", ""), self.token) or not _same_origin(environ):
            return _respond(start_response, "403 Forbidden", "text/plain", "the form is stale: reload the page\n")
        order, errors = validate(form)
        values = {k: form.get(k, "") for k in ("customer", "product_id", "quantity")}
        if order is None:
            return self.page(environ, start_response, status="400 Bad Request", errors=errors, values=values)
        try:
            new_id = self.db.write(INSERT_SQL, (order.product_id, order.customer, order.quantity))
        except Exception as exc:
            if self.db.facts.code(exc) in self.db.facts.no_parent:  # foreign key: no such product
                errors = {"product_id": "That product does not exist."}
                return self.page(environ, start_response, status="400 Bad Request", errors=errors, values=values)
            return self.page(environ, start_response, status="503 Service Unavailable", problem=self._explain(exc),
                             values=values)  # fmt: skip
        log.info("order %d added", new_id)
        start_response("303 See Other", [("Location", f"/?added={new_id}"), ("Content-Length", "0"), *HEADERS])
        return [b""]

    def health(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        report: dict[str, Any] = {"database": self.db.settings.database, "reads_from": self.db.settings.reads_from}
        for endpoint in ENDPOINTS:
            report[endpoint] = self.ping(endpoint)
        healthy = all(report[endpoint]["ok"] for endpoint in ENDPOINTS)
        status = "200 OK" if healthy else "503 Service Unavailable"
        return _respond(start_response, status, "application/json", json.dumps(report, sort_keys=True) + "\n")

    def ping(self, endpoint: str) -> dict[str, Any]:
        """A new connection to `endpoint`: which instance answered, and whether it is read-only."""
        started = time.perf_counter()
        try:
            served = self.db.run(endpoint, [])
        except Exception as exc:
            return {
                "ok": False,
                "error": _one_line(exc, self.db.facts.server),
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        return {"ok": True, "served_by": served.instance, "read_only": served.read_only,
                "ms": round((time.perf_counter() - started) * 1000, 1)}  # fmt: skip

    def _explain(self, exc: BaseException) -> str:
        if isinstance(exc, NotReady):
            return f"The database is not ready: {exc}"
        if self.db.facts.code(exc) in self.db.facts.no_table:
            return "The shop's tables do not exist yet: create them with labkit.create_schema() (notebook 04)."
        return f"The database did not answer: {_one_line(exc, self.db.facts.server)}"


def own_names(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The host names this app answers to: loopback (a Session Manager port-forward arrives as
    127.0.0.1 or localhost on any local port), the instance's own names, and LABKIT_APP_HOSTS (comma-separated)."""
    env = os.environ if environ is None else environ
    names = set(LOOPBACK_NAMES)
    for name in (socket.gethostname(), socket.getfqdn(), *env.get("LABKIT_APP_HOSTS", "").split(",")):
        if name.strip():
            names.add(name.strip().lower())
    return frozenset(names)


def host_allowed(host_header: str, names: frozenset[str]) -> bool:
    """Is the Host header one of `names` (any port)? A DNS-rebinding page sends its own name and is refused,
    so neither the page (with its form token) nor a POST is served to it."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        name, bracket, rest = host[1:].partition("]")
        if not bracket:
            return False
        port = rest[1:] if rest.startswith(":") else rest
    else:
        name, _, port = host.partition(":")
    return bool(name) and name in names and (port == "" or port.isdigit())


def _same_origin(environ: dict[str, Any]) -> bool:
    """A browser sends Origin with a POST: it must be this host (a form posted from another site is refused)."""
    origin = environ.get("HTTP_ORIGIN")
    if not origin or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == environ.get("HTTP_HOST", "")


def _respond(
    start_response: Callable[..., Any], status: str, kind: str, body: str, extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    data = body.encode("utf-8")
    headers = [("Content-Type", f"{kind}; charset=utf-8"), ("Content-Length", str(len(data))), *HEADERS]
    start_response(status, headers + (extra or []))
    return [data]


# ----- the server -----
class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """A thread per request, at most MAX_CONNECTIONS at once: one more is answered 503 without a thread, so
    held connections cannot pile up threads and starve /health."""

    daemon_threads = True
    max_connections = MAX_CONNECTIONS

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(BUSY_RESPONSE)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


BUSY_RESPONSE = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"
    b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n"
)


class QuietHandler(WSGIRequestHandler):
    """One access-log line per request: method, path without its query string, status. A client that does not
    send its request within REQUEST_TIMEOUT seconds is dropped."""

    timeout = REQUEST_TIMEOUT

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.info("%s %s %s", self.command, self.path.split("?", 1)[0], code)

    def log_message(self, format: str, *args: Any) -> None:
        log.info(format, *args)


def make_app_server(
    settings: Settings, dial: Dial | None = None, port: int | None = None, relay: Relay | None = None
) -> WSGIServer:
    app = ShopApp(Database(settings, dial=dial, relay=relay))
    bind_port = settings.port if port is None else port
    return make_server(settings.bind, bind_port, app, server_class=ThreadingServer, handler_class=QuietHandler)


def serve(settings: Settings, dial: Dial | None = None, port: int | None = None, relay: Relay | None = None) -> None:
    """Look the cluster up (reported, not fatal, when it is not there yet), then serve until stopped."""
    server = make_app_server(settings, dial, port, relay)
    app: ShopApp = server.get_app()  # type: ignore[assignment]
    try:
        app.db.cluster()
        log.info("cluster %s found; credentials read from its secret", settings.cluster)
    except NotReady as exc:
        log.warning("cluster %s not ready yet (%s); retrying on each request", settings.cluster, exc)
    host, bound = server.server_address[:2]
    log.info("serving on http://%s:%s", host, bound)
    print(f"shop listening on {host}:{bound}", flush=True)
    server.serve_forever()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        settings = Settings.from_env()
    except BadSettings as exc:
        raise SystemExit(f"shop: {exc}") from None
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
