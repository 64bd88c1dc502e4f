"""The MariaDB engine: real mariadbd processes for Aurora MySQL clusters, replicating with GTIDs.

Runs in the daemon (the reconciler starts, replicates, fences and promotes these servers through the engine
interface in base.py); the client calls only `check_installed` (through base.check_installed) and the doctor
`find_binaries`. Every MariaDB-specific statement, option and error of the sandbox's data plane is here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import shutil
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from labkit.engines.dialect import verifying_context
from labkit.errors import SandboxError
from labkit.home import private_dir
from labkit.sandbox.engines.base import (
    BROKEN,
    CONNECTING,
    REPLICATING,
    STOPPED,
    TLS_CA,
    DatabaseEngine,
    DatabaseServer,
    StatusConnection,
    check_program,
    register,
    wait_accepting,
)
from labkit.sandbox.processes import die_with_parent
from labkit.sandbox.templates import owner_only, shared_template

MARIADBD_ENV = "LABKIT_MARIADBD"
ADMIN_USER = "rdsadmin"  # as on Aurora, a hidden administrative account the learner never uses
REPLICATION_USER = "rdsrepladmin"
TEMPLATE_DIR = "template-v3"  # v3: no secret (shared by the user's homes); the accounts are made at each start
OLD_TEMPLATES = ("template-v2",)  # per-home templates that held the home's passwords: removed, never data
INIT_FILE = "labkit-init.sql"  # in the data directory while the server starts (hashes only), removed once it answers
# Accounts mariadb-install-db makes without a password (root@localhost, root@127.0.0.1, root@::1, anonymous):
# the sandbox has none; the hidden admin account is the only way in besides the learner's master user.
PASSWORDLESS_USERS = ("root", "")
# mariadbd's creation modes (environment variables it reads): files and directories for its owner only.
PRIVATE_MODES = {"UMASK": "0600", "UMASK_DIR": "0700"}

# Small footprint: a lab instance needs a few MB of buffer pool, not the default 128 MB.
SERVER_OPTIONS = [
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=16M",
    "--performance-schema=0",
    "--skip-name-resolve",
    "--max-connections=200",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    # A replica applies in parallel (committing in the writer's order): one applier thread fell seconds behind a
    # writer with several clients, stale reads for the learner and seconds to apply before a promotion.
    "--slave-parallel-threads=4",
    "--slave-parallel-mode=optimistic",
]
# Aurora acknowledges a commit once its shared storage has it, so a failover never loses an acknowledged write.
# Here the first copy is the writer's own binlog: a commit is in it before it is acknowledged, and a crashed
# writer restarts on its data holding every commit (a promotion applies them first, base.py). The second is
# lossless semi-synchronous replication: with AFTER_SYNC the writer answers a commit only once a replica has
# received it. The reconciler turns it on while the cluster has a healthy replica (require_replica_ack); then the
# writer waits for one even when none is connected (wait_no_slave), up to the timeout, by which time the
# reconciler has noticed a replica that is gone and turned it off. Both start off: a restarted server takes no
# writes, and with the replica side off its crash recovery keeps every transaction its binlog holds (MariaDB
# would otherwise cut the ones no replica acknowledged, which a replica may already hold: the two would differ).
SEMI_SYNC_OPTIONS = [
    "--rpl-semi-sync-master-enabled=OFF",
    "--rpl-semi-sync-slave-enabled=OFF",
    "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
    "--rpl-semi-sync-master-wait-no-slave=ON",
    "--rpl-semi-sync-master-timeout=10000",
]

# What an Aurora MySQL master user may do: everything a DBA needs, but not SUPER or READ_ONLY ADMIN,
# so a reader's read_only really refuses the learner's writes.
MASTER_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, "
    "SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, BINLOG MONITOR, "
    "CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER"
)


def install_hint() -> str:
    """How to get MariaDB on this platform."""
    if platform.system() == "Darwin":
        return f"`brew install mariadb sysbench`, or set {MARIADBD_ENV}=/path/to/mariadbd"
    if shutil.which("apt-get"):
        return f"`sudo apt-get install mariadb-server mariadb-client sysbench`, or set {MARIADBD_ENV}=/path/to/mariadbd"
    return f"install MariaDB 10.6 or newer with your package manager, or set {MARIADBD_ENV}=/path/to/mariadbd"


@dataclass(frozen=True)
class Binaries:
    """The MariaDB programs the sandbox runs."""

    mariadbd: Path
    install_db: Path

    def version(self) -> str:
        out = subprocess.run([str(self.mariadbd), "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip()


def find_binaries() -> Binaries:
    """Locate mariadbd (LABKIT_MARIADBD first, then PATH and the usual sbin directories)."""
    explicit = os.environ.get(MARIADBD_ENV, "").strip()  # set but empty: as unset, as for LABKIT_BACKEND
    if explicit:
        server = Path(explicit)
        if not (server.is_file() and os.access(server, os.X_OK)):
            raise SandboxError(
                f"{explicit} is not an executable mariadbd",
                field=MARIADBD_ENV,
                fix=f"point {MARIADBD_ENV} at the mariadbd program, or unset it to search PATH",
            )
    else:
        search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"])
        found = shutil.which("mariadbd", path=search) or shutil.which("mysqld", path=search)
        if not found:
            raise SandboxError(
                "MariaDB server (mariadbd) not found; the sandbox runs real MariaDB as its databases",
                field="mariadbd",
                fix=install_hint(),
            )
        server = Path(found)
    candidates = [server.parent, server.parent.parent / "bin", server.parent.parent / "scripts"]
    search_path = os.pathsep.join([*(str(c) for c in candidates), os.environ.get("PATH", ""), "/usr/bin"])
    installer = shutil.which("mariadb-install-db", path=search_path) or shutil.which(
        "mysql_install_db", path=search_path
    )
    if not installer:
        raise SandboxError(
            f"found {server} but not mariadb-install-db beside it",
            field="mariadb-install-db",
            fix=install_hint(),
        )
    return Binaries(server, Path(installer))


def _user_args() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def _server_env() -> dict[str, str]:
    return {**os.environ, **PRIVATE_MODES}


def ensure_template(binaries: Binaries, root: Path) -> Path:
    """An initialised data directory to copy for each new instance: the user's shared one (made once per user and
    MariaDB build, about 1 s; see labkit.sandbox.templates), else one in `root` (this home's data folder).

    It holds no secret and no account to log in with: mariadb-install-db's passwordless root and anonymous accounts
    are dropped, and the hidden admin and the replication user are made at each server's start (`init_sql`), with
    the home's own passwords. An older per-home template (it held the home's passwords) is removed: never data.
    """
    private_dir(root)
    for old in OLD_TEMPLATES:
        shutil.rmtree(root / old, ignore_errors=True)
    return shared_template(
        _template_name(binaries), lambda folder: _make_template(binaries, folder, root), root / TEMPLATE_DIR
    )


def _template_name(binaries: Binaries) -> str:
    """The shared template's folder name: its format and the MariaDB build that made it (a new build, a new one)."""
    fingerprint = hashlib.sha256()
    for program in (binaries.mariadbd, binaries.install_db):
        info = program.resolve().stat()
        fingerprint.update(f"{program.resolve()}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return f"mariadb-{TEMPLATE_DIR}-{fingerprint.hexdigest()[:16]}"


def _make_template(binaries: Binaries, template: Path, root: Path) -> None:
    """mariadb-install-db into the empty folder `template`, then drop its passwordless accounts (no binlog then)."""
    log = root / "template.log"
    with _private_file(log).open("w") as out:
        result = subprocess.run(
            [str(binaries.install_db), "--no-defaults", f"--datadir={template}", "--skip-test-db",
             "--auth-root-authentication-method=normal", *_user_args(), *SERVER_OPTIONS[:2]],
            stdout=out, stderr=subprocess.STDOUT, check=False, env=_server_env(),
        )  # fmt: skip
    if result.returncode != 0:
        raise SandboxError(
            f"mariadb-install-db failed (see {log})", field="mariadb", fix="check the log; " + install_hint()
        )
    with log.open("a") as out:
        result = subprocess.run(
            [str(binaries.mariadbd), "--no-defaults", "--bootstrap", f"--datadir={template}",
             *_user_args(), *SERVER_OPTIONS[:2]],
            input=_DROP_PASSWORDLESS.encode(), stdout=out, stderr=subprocess.STDOUT, check=False, env=_server_env(),
        )  # fmt: skip
    if result.returncode != 0:
        raise SandboxError(f"MariaDB bootstrap failed (see {log})", field="mariadb", fix=install_hint())


_PASSWORDLESS = ", ".join(f"'{user}'" for user in PASSWORDLESS_USERS)
_DROP_PASSWORDLESS = (
    f"DELETE FROM mysql.global_priv WHERE User IN ({_PASSWORDLESS});\n"
    f"DELETE FROM mysql.proxies_priv WHERE User IN ({_PASSWORDLESS});\n"
    "FLUSH PRIVILEGES;\n"
)


def init_sql(admin_password: str, repl_password: str) -> str:
    """What a server runs at its start, before it accepts a connection (--init-file): no passwordless account, and
    the hidden admin and the replication user with this home's passwords, by their hashes. Binary logging is off
    for it, so none of it reaches a binlog, a replica or `SHOW BINLOG EVENTS`."""
    admin, repl = f"'{ADMIN_USER}'@'127.0.0.1'", f"'{REPLICATION_USER}'@'127.0.0.1'"
    lines = ["SET SESSION sql_log_bin = 0;", *_DROP_PASSWORDLESS.splitlines()]
    for account, password, privileges in (
        (admin, admin_password, "ALL PRIVILEGES ON *.* TO {} WITH GRANT OPTION"),
        (repl, repl_password, "REPLICATION SLAVE ON *.* TO {}"),
    ):
        if not password:
            raise SandboxError(
                "a sandbox account password is empty",
                field="admin.secret",
                fix="remove data/admin.secret and data/repl.secret from the labkit home, then `labkit sandbox up`",
            )
        hashed = native_hash(password)
        lines += [
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY PASSWORD '{hashed}';",
            f"ALTER USER {account} IDENTIFIED BY PASSWORD '{hashed}';",
            f"GRANT {privileges.format(account)};",
        ]
    return "\n".join(lines) + "\n"


def _private_file(path: Path) -> Path:
    """Create `path` empty if missing, readable and writable by its owner only (0600)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)
    return path


@register
class MariaDBEngine(DatabaseEngine):
    """Aurora MySQL as MariaDB: one template data directory per user (shared by its homes), copied for each new
    instance."""

    rds_engines = ("aurora-mysql", "aurora", "mysql", "mariadb")
    default_port = 3306
    identity_sql = "SELECT @@report_host"  # each server starts with --report-host=<DB instance identifier>

    def __init__(self) -> None:
        self._binaries: Binaries | None = None
        self._template: Path | None = None
        self._data_root: Path | None = None
        self._lock = threading.Lock()

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    def check_installed(self) -> None:
        """mariadbd is found and is MariaDB's server: `sandbox up` refuses /bin/false or a script that is not,
        naming the setting that chose it, instead of saying ready and failing at the lab's first database."""
        binaries = find_binaries()
        chosen = bool(os.environ.get(MARIADBD_ENV, "").strip())
        check_program(
            [str(binaries.mariadbd), "--version"], "MariaDB", field=MARIADBD_ENV if chosen else "mariadbd",
            fix=f"point {MARIADBD_ENV} at MariaDB's mariadbd program (e.g. /usr/sbin/mariadbd), or unset it to "
            "search PATH" if chosen else install_hint(),
        )  # fmt: skip
        self._binaries = binaries

    def version(self) -> str:
        self.check_installed()
        return self.binaries.version().replace(str(self.binaries.mariadbd), "mariadbd")

    def prepare(self, data_root: Path, admin_password: str, repl_password: str) -> None:
        with self._lock:
            self._data_root = data_root
            if self._template is None:
                self._template = ensure_template(self.binaries, data_root)

    def release(self, data_root: Path) -> None:
        """Remove the home's socket folder: every server has stopped (see _forget_socket)."""
        with contextlib.suppress(OSError):  # gone already, or a socket is left (a server stopped outside the daemon)
            _runtime_dir(data_root / "instances" / "any").rmdir()

    def server(
        self, name: str, datadir: Path, port: int, server_id: int, admin_password: str, repl_password: str
    ) -> MariaDBServer:
        if self._template is None:
            raise SandboxError("the MariaDB template is not prepared", field=name, fix="call prepare() first")
        server = MariaDBServer(
            name, datadir, port, server_id, admin_password, self.binaries, self._template, repl_password
        )
        server.tls_root = self._data_root
        return server


class MariaDBServer(DatabaseServer):
    """One mariadbd process standing in for one Aurora DB instance."""

    def __init__(
        self,
        name: str,
        datadir: Path,
        port: int,
        server_id: int,
        admin_password: str,
        binaries: Binaries,
        template: Path,
        repl_password: str,
    ) -> None:
        self.name = name
        self.datadir = datadir
        self.port = port
        self.server_id = server_id
        self.admin_password = admin_password
        self.binaries = binaries
        self.template = template
        self.repl_password = repl_password
        self.process: subprocess.Popen[bytes] | None = None
        self._monitor = StatusConnection(self._connect_monitor, _first_row, (pymysql.err.OperationalError,
                                                                          pymysql.err.InterfaceError))  # fmt: skip

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def _connect_monitor(self) -> pymysql.connections.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=ADMIN_USER, password=self.admin_password, autocommit=True,
            connect_timeout=2, read_timeout=10, write_timeout=10, ssl=self._admin_tls(),
        )  # fmt: skip

    def _admin_tls(self) -> ssl.SSLContext:
        """TLS for the daemon's own connections, verifying the server against the home's CA and 127.0.0.1 (its
        certificate names it): the hidden admin's password never crosses unencrypted, and the context is made once.

        Without `ssl`, PyMySQL still encrypts when the server offers it, but makes a new context for every
        connection, loading the system's CA store each time: 25-30 ms of the daemon's interpreter per connection,
        and a new server's start makes dozens (readiness polls, bootstrap, replication, the monitor)."""
        try:
            ca_pem = (self.datadir / TLS_CA).read_bytes()  # written at the server's start (certificate_files)
        except OSError as exc:  # a driver error, as a failed handshake would be: callers handle those
            raise pymysql.err.OperationalError(2026, f"the server's CA certificate cannot be read: {exc}") from None
        return _verifying_context(str(self.datadir / TLS_CA), ca_pem)

    def _status(self, query: str) -> dict[str, Any] | None:
        """The first row of a read-only status query, on the connection kept for them."""
        return self._monitor.first_row(query)

    def _slave_status(self) -> dict[str, object] | None:
        return self._status("SHOW SLAVE STATUS")

    def replication_state(self) -> str:
        """From SHOW SLAVE STATUS. A thread that stopped with an error (1236 when this server's GTIDs diverged
        from the writer's binlog, or a statement that failed to apply) does not restart on its own: BROKEN."""
        row = self._slave_status()
        if not row:
            return STOPPED
        io, sql = row["Slave_IO_Running"], row["Slave_SQL_Running"]
        if (io == "No" and row.get("Last_IO_Errno")) or (sql == "No" and row.get("Last_SQL_Errno")):
            return BROKEN
        if io == "Yes" and sql == "Yes":
            return REPLICATING
        return STOPPED if io == "No" and sql == "No" else CONNECTING

    def caught_up_position(self) -> str | None:
        """The GTID position this replica has received (its relay log), to be applied before a promotion."""
        row = self._slave_status()
        return str(row["Gtid_IO_Pos"]) if row and row.get("Gtid_IO_Pos") else None

    def position(self) -> str:
        """The last GTID of each domain in its binlog: every transaction it committed (its own and, with
        log-slave-updates, every one it applied); after a crash, recovery has committed all the binlog holds."""
        row = self._status("SELECT @@gtid_binlog_pos AS position")
        return str(row["position"] or "") if row else ""

    def holds(self, position: str) -> bool:
        """Every GTID of `position` is in this server's binlog state: the same origin (domain and server id)
        with at least that sequence number. (A sequence number alone is not enough: a diverged server has the
        same numbers from another origin.)"""
        row = self._status("SELECT @@gtid_binlog_state AS state")
        held = _gtids(str(row["state"] or "") if row else "")
        return all(held.get(origin, -1) >= seq for origin, seq in _gtids(position).items())

    def start(self) -> None:
        """Copy the template and start the server (returns at once; see wait_ready)."""
        if not self.datadir.exists():
            private_dir(self.datadir.parent)
            shutil.copytree(self.template, self.datadir, symlinks=True)
        owner_only(self.datadir)  # also a data directory made before the sandbox kept everything private
        certificate, key, ca = self.certificate_files(self.datadir)  # also for a data directory made before TLS
        init = _private_file(self.datadir / INIT_FILE)
        init.write_text(init_sql(self.admin_password, self.repl_password))
        args = [
            str(self.binaries.mariadbd), "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
            "--bind-address=127.0.0.1", f"--socket={socket_path(self.datadir, self.server_id)}",
            f"--pid-file={self.datadir / 'mysqld.pid'}", f"--log-error={self.datadir / 'error.log'}",
            f"--server-id={self.server_id}", f"--report-host={self.name}", "--log-bin=binlog", "--log-slave-updates", "--gtid-strict-mode=1",
            "--binlog-format=ROW", "--read-only=1", *_user_args(), *SERVER_OPTIONS, *SEMI_SYNC_OPTIONS,
            f"--ssl-cert={certificate}", f"--ssl-key={key}", f"--ssl-ca={ca}",
            f"--require-secure-transport={'ON' if self.secure_transport else 'OFF'}", f"--init-file={init}",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent, env=_server_env(),
        )  # fmt: skip

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until it answers the hidden admin, whose account its --init-file made before it listened."""
        log = self.datadir / "error.log"
        wait_accepting(self, timeout, program="mariadbd", log=log, refused=pymysql.err.OperationalError, poll=0.02)
        (self.datadir / INIT_FILE).unlink(missing_ok=True)

    def error_tail(self, lines: int = 3) -> str:
        try:
            text = (self.datadir / "error.log").read_text(errors="replace")
        except OSError:
            return "(no error log)"
        errors = [line for line in text.strip().splitlines() if "[ERROR]" in line]
        return " | ".join(errors[-lines:]) or "(no errors logged)"

    def admin(self) -> pymysql.connections.Connection:
        """An administrative connection (the hidden rdsadmin account)."""
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=ADMIN_USER, password=self.admin_password,
            autocommit=True, connect_timeout=2, ssl=self._admin_tls(),
        )  # fmt: skip

    def execute(self, *statements: str, args: tuple[object, ...] | None = None) -> list[tuple[object, ...]]:
        """Run statements as the admin; returns the last statement's rows."""
        rows: list[tuple[object, ...]] = []
        with self.admin() as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement, args if "%s" in statement else None)
                rows = list(cur.fetchall())
        return rows

    def bootstrap_writer(
        self, master_user: str, master_password: str, database: str | None, repl_password: str
    ) -> None:
        """First writer of a cluster: the learner's master user and the initial database (replicated to readers).

        The replication user is not made here: every server has it from its start (see init_sql), outside the
        binlog, so its password never reaches one.
        """
        with self.admin() as conn, conn.cursor() as cur:  # one connection: a new one costs more than a statement
            cur.execute("SET GLOBAL read_only = 0")
            cur.execute(  # by its hash: the statement reaches the binlog (and the replicas), the password never does
                "CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY PASSWORD %s",
                (master_user, native_hash(master_password)),
            )
            cur.execute(f"GRANT {MASTER_PRIVILEGES} ON *.* TO %s@'%%' WITH GRANT OPTION", (master_user,))
            if database:
                quoted = database.replace("`", "``")
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{quoted}`")

    def set_password(self, user: str, password: str) -> None:
        """ALTER USER with the password's hash (mysql_native_password: *SHA1(SHA1(password))), so the binlog,
        and the replicas that apply it, carry the hash only, as mysql.global_priv does."""
        self.execute("ALTER USER %s@'%%' IDENTIFIED BY PASSWORD %s", args=(user, native_hash(password)))

    def replicate_from(self, writer_port: int, repl_password: str) -> None:
        """Become a read-only replica of the writer on `writer_port` (GTID replication, semi-synchronous: it
        acknowledges what it receives), continuing from the last transaction it holds."""
        self.execute(
            "SET GLOBAL read_only = 1",
            "SET GLOBAL rpl_semi_sync_master_enabled = 0",  # a replica waits for no replica of its own
            "STOP SLAVE",
            "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos",
            "SET GLOBAL rpl_semi_sync_slave_enabled = 1",
        )
        self.execute(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, "
            f"MASTER_USER='{REPLICATION_USER}', MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, "
            "MASTER_CONNECT_RETRY=1, MASTER_SSL=1, MASTER_SSL_CA=%s",
            args=(writer_port, repl_password, str(self.datadir / TLS_CA)),
        )
        self.execute("START SLAVE")

    def require_secure_transport(self, required: bool) -> None:
        """MariaDB's require_secure_transport (dynamic since 10.5.2, as Aurora MySQL's): a client without TLS is
        refused with error 3159. The hidden admin and the replication connect with TLS themselves (PyMySQL prefers
        it; CHANGE MASTER sets MASTER_SSL), so the sandbox's own work goes on."""
        self.execute(f"SET GLOBAL require_secure_transport = {'ON' if required else 'OFF'}")
        self.secure_transport = required
        row = self._slave_status()
        if required and row and row.get("Master_SSL_Allowed") != "Yes":  # pointed before the sandbox had TLS
            self.execute(
                "STOP SLAVE", "CHANGE MASTER TO MASTER_SSL=1, MASTER_SSL_CA=%s", "START SLAVE",
                args=(str(self.datadir / TLS_CA),),
            )  # fmt: skip

    def require_replica_ack(self, required: bool) -> None:
        """Lossless semi-synchronous replication on or off (see SEMI_SYNC_OPTIONS); off releases a commit that
        waits for a replica at once."""
        self.execute(f"SET GLOBAL rpl_semi_sync_master_enabled = {1 if required else 0}")

    def fence(self) -> str:
        """Stop taking writes (the old writer in a failover); returns its last GTID position."""
        self.execute("SET GLOBAL read_only = 1")
        return self.position()

    def promote(self, catch_up_to: str | None, timeout: float = 10.0) -> None:
        """Become the writer once it holds `catch_up_to`: wait for replication to apply it (MASTER_GTID_WAIT),
        check it really holds it (the same origins, not only the numbers), then stop replicating and take writes."""
        if catch_up_to and not self.holds(catch_up_to):
            self.execute("SELECT MASTER_GTID_WAIT(%s, %s)", args=(catch_up_to, timeout))
            if not self.holds(catch_up_to):
                raise SandboxError(
                    f"{self.name} did not apply the writer's transactions up to {catch_up_to} within {timeout:.0f} s "
                    f"(it holds {self.position() or 'none'}); it stays a replica",
                    field=self.name,
                    fix=f"see {self.datadir / 'error.log'}",
                )
        self.execute(
            "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL rpl_semi_sync_slave_enabled = 0", "SET GLOBAL read_only = 0"
        )

    def replication_source_port(self) -> int | None:
        """The writer's port from SHOW SLAVE STATUS (None when it replicates from nobody)."""
        row = self._slave_status()
        return int(str(row["Master_Port"])) if row else None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._monitor.forget()
        _forget_socket(self.datadir, self.server_id)

    def remove(self) -> None:
        """Kill the process and delete its data: nothing is kept, so there is nothing to flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
        self._monitor.forget()
        shutil.rmtree(self.datadir, ignore_errors=True)
        _forget_socket(self.datadir, self.server_id)


@functools.lru_cache(maxsize=8)
def _verifying_context(ca_file: str, ca_pem: bytes) -> ssl.SSLContext:
    """labkit's verifying context (labkit.engines.dialect) for this CA and the name 127.0.0.1, made once per CA: the
    CA's bytes are in the key, so one remade after damage gets a new context. (Every server's copy of a home's CA
    has the same bytes; the file named is the first server's that asked.)"""
    return verifying_context(ca_file, "127.0.0.1")


def _first_row(connection: pymysql.connections.Connection, query: str) -> dict[str, Any] | None:
    with connection.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(query)
        row: dict[str, Any] | None = cur.fetchone()
    return row


def _gtids(position: str) -> dict[tuple[int, int], int]:
    """A GTID list ("0-1-100,0-2-7") as (domain, server id) -> sequence number, the highest of each origin."""
    held: dict[tuple[int, int], int] = {}
    for gtid in filter(None, (part.strip() for part in position.split(","))):
        domain, server, seq = (int(x) for x in gtid.split("-"))
        held[(domain, server)] = max(seq, held.get((domain, server), -1))
    return held


def native_hash(password: str) -> str:
    """mysql_native_password's stored form of a password, `*` + SHA1(SHA1(password)) in upper-case hex."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _forget_socket(datadir: Path, server_id: int) -> None:
    """Remove a stopped server's socket, never its runtime folder: another server of the home may have made the
    folder and not bound its socket yet (release() removes the folder once every server has stopped). Nor is the
    folder made again for this: servers stopped in parallel each remove their own socket."""
    (_runtime_dir(datadir) / f"{server_id}.sock").unlink(missing_ok=True)


def socket_path(datadir: Path, server_id: int) -> Path:
    """A Unix socket path short enough for the 107-byte limit, however deep the labkit home is."""
    return private_dir(_runtime_dir(datadir)) / f"{server_id}.sock"


def _runtime_dir(datadir: Path) -> Path:
    digest = hashlib.sha1(str(datadir.parent).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"labkit-{os.getuid()}-{digest}"
