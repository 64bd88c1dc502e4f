"""The PostgreSQL engine: real PostgreSQL servers for Aurora PostgreSQL clusters, readers as streaming hot standbys.

Runs in the daemon (the reconciler starts, replicates, fences and promotes these servers through the engine
interface in base.py); the client calls only `check_installed`. Every PostgreSQL-specific program, setting,
statement and log message of the sandbox's data plane is here.

How it keeps base.py's promises with PostgreSQL's own means:
- A server always starts in recovery (`standby.signal`): it takes no writes until `promote` runs `pg_promote()`.
  A crashed writer restarted so replays all of its WAL before it answers, so its `position` (an LSN) covers
  every commit it acknowledged.
- A reader is a hot standby made with `pg_basebackup` from the writer, streaming from a replication slot the
  writer keeps for it (named after the DB instance), so the writer keeps the WAL a reader still needs. A write
  on it fails with SQLSTATE 25006, as on Aurora.
- While the cluster has a healthy reader the writer answers a commit only once a standby has flushed it
  (`synchronous_standby_names = 'ANY 1 (*)'`, `synchronous_commit = on`); with none, the setting is empty and a
  commit waits for nobody. The setting lives in postgresql.auto.conf, which base backups copy: `promote` resets
  it first, or a promoted standby would hang its first commit waiting for a standby it does not have.
- `fence` is a fast shutdown: the standbys receive everything up to its shutdown checkpoint before it exits.
  A server pointed at a new writer is stopped and rewound with `pg_rewind` (which does nothing when its history
  is a prefix of the writer's), never copied over. A blank server (a copy of the template that never took a
  write) is replaced by a base backup. When a rewind cannot work, `replication_state` says BROKEN and the
  reconciler keeps the data aside and rebuilds the replica.

Accounts, as on Aurora: the hidden superuser `rdsadmin` and the replication role `rdsrepladmin`, each with its
own generated password, and `rds_superuser`, the group the learner's master user is in. It may create databases
and own everything in them, and read every statistics view (pg_read_all_stats); it is not a superuser and may
not create roles: PostgreSQL 15's CREATEROLE lets a role grant itself pg_execute_server_program (run programs as
the server) and drop the replication role, which Aurora's patched rds_superuser cannot. pg_hba.conf has only
SCRAM password lines on 127.0.0.1 (no trust, no peer, no Unix socket); every password is set as a SCRAM verifier
computed here, so no statement a server could log carries one, and log_statement is off.

Identity, as on Aurora: `aurora_db_instance_identifier()` answers the DB instance identifier (`cluster_name`,
set on each server's command line), and `aurora_replica_status()` lists the instances this server knows: on
the writer itself and each standby streaming from it, on a reader its writer and itself (Aurora reads every
instance's row from the shared volume; a standby knows only its own upstream). Both live in pg_catalog of
template1 and postgres, so every database has them and no learner can drop them.

Root: PostgreSQL refuses to run as root, so a root daemon (CI, `make lab` in a container) runs its servers as
the unprivileged account setup creates (SERVICE_ACCOUNT). That account owns each instance's directory (0700)
but cannot traverse the labkit home (0700, root's, often under /root or a 0700 temporary folder): every program
is given the directories it works in as open file descriptors and reaches them as `/proc/self/fd/N`, so nothing
of the home is opened to any other user.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import glob
import hashlib
import hmac
import os
import platform
import pwd
import re
import shutil
import signal
import stringprep
import subprocess
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import SandboxError
from labkit.home import private_dir
from labkit.sandbox.engines.base import (
    BROKEN,
    CONNECTING,
    REPLICATING,
    STOPPED,
    TLS_CERT,
    TLS_KEY,
    DatabaseEngine,
    DatabaseServer,
    StatusConnection,
    register,
    wait_accepting,
)
from labkit.sandbox.processes import die_with_parent, pid_alive, process_args
from labkit.sandbox.templates import owner_only

if TYPE_CHECKING:
    import psycopg

POSTGRES_ENV = "LABKIT_POSTGRES"  # the `postgres` program of an install outside the usual places
SERVICE_ACCOUNT = "labkit-pg"  # who the servers run as when the daemon is root (labkit/workbook/bootstrap.py makes it)
MIN_VERSION = 14  # pg_rewind from a standby source, reloadable primary_conninfo
ADMIN_USER = "rdsadmin"  # as on Aurora, a hidden superuser the learner never uses
REPLICATION_USER = "rdsrepladmin"
MASTER_ROLE = "rds_superuser"
RESERVED_USERS = (ADMIN_USER, REPLICATION_USER, MASTER_ROLE)
TEMPLATE_DIR = "pg-template-v2"  # v2: a standby's lag before its first replayed commit
OLD_TEMPLATES = ("pg-template-v1",)  # blank templates of earlier versions: never a database's data
DATA = "pgdata"  # the data directory, inside each instance's directory
LOG = "server.log"  # beside it: the server's and its tools' output (base backups do not copy it)
BLANK = "blank"  # beside it: the data is a copy of the template that never took a write (a base backup replaces it)
PASSFILE = "labkit-replication.pass"  # in the data directory: the replication password, for the standby's receiver
READY = ".labkit-ready"

# Written into the template's postgresql.conf (every server is a copy of it, or a base backup of one).
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",  # no local socket, so no peer login: TCP with a password only
    "max_connections": "100",
    "shared_buffers": "16MB",  # a lab instance needs a few MB, not the default 128 MB
    "ssl": "off",  # each start turns it on with the server's certificate (start(): an older data directory too)
    "password_encryption": "'scram-sha-256'",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "wal_keep_size": "32MB",  # what a rewind of an old writer reads back to
    "max_slot_wal_keep_size": "512MB",  # the slot of a deleted reader stops keeping WAL at this size
    "wal_log_hints": "on",  # pg_rewind needs it
    # A server that did not stop cleanly syncs its data before recovery: one syncfs, not an fsync per file. A fresh
    # base backup is such a server, so pg_basebackup skips its own per-file sync (--no-sync): a reader joins in
    # about 2 s here instead of 6.
    "recovery_init_sync_method": "syncfs",
    "hot_standby": "on",
    "hot_standby_feedback": "on",  # a query on a reader does not get cancelled by what the writer vacuums
    "wal_receiver_status_interval": "1s",  # replay positions (replica lag) reach the writer every second
    "wal_retrieve_retry_interval": "200ms",  # a standby whose writer restarted reconnects at once
    "synchronous_commit": "on",  # with synchronous_standby_names set: a standby has flushed the commit
    "logging_collector": "off",  # stderr, which the daemon writes to the instance's server.log
    "log_line_prefix": "'%m [%p] '",
    "log_statement": "'none'",
    "log_checkpoints": "off",
    "labkit.writer": "''",  # on a standby, its writer's DB instance identifier (aurora_replica_status)
}
HBA = (
    "# labkit sandbox: SCRAM password logins over TCP on 127.0.0.1 only; no trust, no peer, no Unix socket\n"
    "host    all             all             127.0.0.1/32    scram-sha-256\n"
    f"host    replication     {REPLICATION_USER}    127.0.0.1/32    scram-sha-256\n"
)
# rds.force_ssl = 1, as Aurora PostgreSQL applies it: every `host` rule becomes `hostssl` (Aurora User Guide, "Securing
# Aurora PostgreSQL data with SSL/TLS": pg_hba_file_rules then shows hostssl), so a client without TLS finds no rule
# and is refused ("no pg_hba.conf entry ... no encryption"). The sandbox's own connections (its admin, the standbys'
# WAL receivers, pg_basebackup and pg_rewind) use libpq's default sslmode=prefer, so they go on over TLS.
HBA_SECURE = HBA.replace("\nhost    ", "\nhostssl ")
# Log lines that say a standby can never continue from its data: its history diverged from the writer's, the WAL
# it needs is gone, or it is another database system.
BROKEN_MARKERS = (
    "forked off current database system timeline",
    "is not a child of this server's history",
    "has already been removed",
    "can no longer get changes from replication slot",
    "database system identifier differs",
)
SLOT_MISSING = re.compile(r'replication slot "[^"]+" does not exist')

IDENTITY_FUNCTIONS = """
CREATE FUNCTION pg_catalog.aurora_db_instance_identifier() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT pg_catalog.current_setting('cluster_name') $$;

CREATE FUNCTION pg_catalog.aurora_replica_status(
    OUT server_id text, OUT session_id text, OUT replica_lag_in_msec double precision,
    OUT last_update_timestamp timestamp with time zone, OUT is_current boolean, OUT cpu double precision)
    RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT current_setting('cluster_name'), 'MASTER_SESSION_ID', NULL::float8, now(), true, NULL::float8
     WHERE NOT pg_is_in_recovery()
    UNION ALL
    SELECT r.application_name, r.pid::text, COALESCE(EXTRACT(epoch FROM r.replay_lag) * 1000, 0)::float8,
           r.reply_time, false, NULL::float8
      FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
     WHERE NOT pg_is_in_recovery()
    UNION ALL
    SELECT w, 'MASTER_SESSION_ID', NULL::float8, now(), false, NULL::float8
      FROM NULLIF(current_setting('labkit.writer', true), '') AS w WHERE pg_is_in_recovery()
    UNION ALL
    -- the time since the last replayed commit, or since this server started when it replayed none yet
    SELECT current_setting('cluster_name'), pg_backend_pid()::text,
           CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn()
                THEN 0 ELSE EXTRACT(epoch FROM now() - COALESCE(pg_last_xact_replay_timestamp(),
                                                                 pg_postmaster_start_time())) * 1000 END::float8,
           now(), true, NULL::float8
     WHERE pg_is_in_recovery()
$$;
"""


def install_hint() -> str:
    """How to get PostgreSQL's server programs on this platform."""
    if platform.system() == "Darwin":
        return f"`brew install postgresql@15`, or set {POSTGRES_ENV}=/path/to/postgres"
    if shutil.which("apt-get"):
        return f"`sudo apt-get install postgresql postgresql-client`, or set {POSTGRES_ENV}=/path/to/postgres"
    return (
        f"install PostgreSQL {MIN_VERSION} or newer with your package manager, or set {POSTGRES_ENV}=/path/to/postgres"
    )


@dataclass(frozen=True)
class Binaries:
    """The PostgreSQL server programs, all from one directory."""

    bindir: Path
    PROGRAMS = ("postgres", "initdb", "pg_basebackup", "pg_rewind", "pg_controldata")

    def program(self, name: str) -> str:
        return str(self.bindir / name)

    def version(self) -> str:
        out = subprocess.run([self.program("postgres"), "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    def major(self) -> int:
        found = re.search(r"\) (\d+)", self.version())
        return int(found.group(1)) if found else 0


def _candidate_dirs() -> list[Path]:
    """Where PostgreSQL's server programs usually are: Debian's versioned folders (newest first), PATH, Homebrew."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_numbers, reverse=True)
    on_path = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    brew = sorted(glob.glob("/opt/homebrew/opt/postgresql@*/bin") + glob.glob("/usr/local/opt/postgresql@*/bin"))
    return [Path(d) for d in debian] + on_path + [Path(d) for d in reversed(brew)] + [Path("/usr/local/pgsql/bin")]


def _numbers(path: str) -> tuple[int, ...]:
    """A path's numbers, to sort versioned folders (".../15/bin" after ".../9/bin")."""
    return tuple(int(n) for n in re.findall(r"[0-9]+", path))


def _is_file(path: Path) -> bool:
    """Whether `path` is a file; False for one this account may not look into (a folder on another account's
    PATH, such as root's, that a hub learner inherits): Path.is_file raises PermissionError there."""
    try:
        return path.is_file()
    except OSError:
        return False


def find_binaries() -> Binaries:
    """Locate `postgres` and the programs beside it (LABKIT_POSTGRES first, then the usual folders)."""
    explicit = os.environ.get(POSTGRES_ENV)
    if explicit:
        server = Path(explicit)
        if not (_is_file(server) and os.access(server, os.X_OK)):
            raise SandboxError(
                f"{explicit} is not an executable postgres",
                field=POSTGRES_ENV,
                fix=f"point {POSTGRES_ENV} at the postgres program, or unset it to search the usual places",
            )
        folders = [server.parent]
    else:
        folders = [d for d in _candidate_dirs() if _is_file(d / "postgres")]
        if not folders:
            raise SandboxError(
                "PostgreSQL server (postgres) not found; the sandbox runs real PostgreSQL for Aurora PostgreSQL",
                field="postgres",
                fix=install_hint(),
            )
    folder = folders[0]
    missing = [name for name in Binaries.PROGRAMS if not os.access(folder / name, os.X_OK)]
    if missing:
        raise SandboxError(
            f"found {folder / 'postgres'} but not {', '.join(missing)} beside it", field="postgres", fix=install_hint()
        )
    binaries = Binaries(folder)
    if binaries.major() < MIN_VERSION:
        raise SandboxError(
            f"{binaries.version() or folder / 'postgres'} is too old: the sandbox needs PostgreSQL {MIN_VERSION} or newer",
            field="postgres",
            fix=install_hint(),
        )
    return binaries


# ---- who the servers run as --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerAccount:
    """The account the servers and their tools run as: the daemon's own, or SERVICE_ACCOUNT when that is root."""

    name: str | None  # None: the daemon's own account
    uid: int = -1
    gid: int = -1

    @classmethod
    def for_this_process(cls) -> ServerAccount:
        if os.geteuid() != 0:
            return cls(None)
        try:
            entry = pwd.getpwnam(SERVICE_ACCOUNT)
        except KeyError:
            raise SandboxError(
                f"PostgreSQL refuses to run as root, and the account {SERVICE_ACCOUNT} it runs as here does not exist",
                field=SERVICE_ACCOUNT,
                fix="run `make setup` (it creates the account), or `useradd --system --user-group --no-create-home "
                f"--shell /usr/sbin/nologin {SERVICE_ACCOUNT}`; or run the sandbox as an ordinary user",
            ) from None
        return cls(SERVICE_ACCOUNT, entry.pw_uid, entry.pw_gid)

    def own(self, path: Path, tree: bool = False) -> None:
        """Give `path` (and with `tree`, everything in it) to the account."""
        if self.name is None:
            return
        for item in [path, *(path.rglob("*") if tree else [])]:
            os.chown(item, self.uid, self.gid, follow_symlinks=False)

    @contextlib.contextmanager
    def reach(self, *folders: Path) -> Iterator[tuple[list[str], dict[str, Any]]]:
        """How a program reaches `folders`: their paths, and the subprocess arguments that run it as the account.

        The service account cannot traverse the root-owned home, so there each folder is opened here and handed
        to the program as a file descriptor, which it names `/proc/self/fd/N` (a program's working folder is "/":
        PostgreSQL's programs change back to it after finding themselves)."""
        environment = _server_environment()
        if self.name is None:
            yield [str(folder) for folder in folders], {"env": environment}
            return
        descriptors = [os.open(folder, os.O_RDONLY | os.O_DIRECTORY) for folder in folders]
        try:
            yield [f"/proc/self/fd/{fd}" for fd in descriptors], {
                "env": {**environment, "HOME": "/nonexistent"}, "cwd": "/", "pass_fds": tuple(descriptors),
                "user": self.uid, "group": self.gid, "extra_groups": [],
            }  # fmt: skip
        finally:
            for fd in descriptors:
                os.close(fd)


def _server_environment() -> dict[str, str]:
    """The daemon's environment without PG* variables (a learner's PGOPTIONS or PGDATA must not steer a server)."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return {**kept, "LC_ALL": "C", "TZ": "UTC"}


def _private_file(path: Path, text: str = "") -> Path:
    """Write `path` readable and writable by its owner only (0600), created so from the start."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)
    return path


# ---- passwords, as PostgreSQL stores them ---------------------------------------------------------------------


def saslprep(password: str) -> str:
    """RFC 4013 SASLprep, as PostgreSQL applies it to a password before hashing (the raw text when it is not
    valid: PostgreSQL then hashes the password as given)."""
    if password.isascii() and password.isprintable():
        return password
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c))
    normal = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3, stringprep.in_table_c4,
        stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
        stringprep.in_table_c9, stringprep.in_table_a1,
    )  # fmt: skip
    if any(table(c) for c in normal for table in prohibited):
        return password
    return normal


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (pg_authid.rolpassword): setting a role's password
    to it (`PASSWORD 'SCRAM-SHA-256$...'`) is accepted as already hashed, so the password never reaches a server."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def _literal(text: str) -> str:
    """A SQL string literal (for the template's SQL, run before any driver can connect)."""
    return "'" + text.replace("'", "''") + "'"


def _lsn(position: str | None) -> int:
    """An LSN ("16/B374D848") as a number; 0 for none."""
    if not position:
        return 0
    high, _, low = position.partition("/")
    return (int(high, 16) << 32) | int(low or "0", 16)


def slot_name(instance: str) -> str:
    """The writer's replication slot for the standby of DB instance `instance` (lower-case letters, digits and _)."""
    name = re.sub(r"[^a-z0-9_]", "_", instance.lower())
    return name if len(name) <= 63 else f"{name[:50]}_{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def _set_settings(path: Path, settings: dict[str, str | None]) -> None:
    """Set (or with None, remove) `settings` in a postgresql.auto.conf-style file, in place (its owner stays)."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in settings]
    kept += [f"{name} = {_literal(value)}" for name, value in settings.items() if value is not None]
    with path.open("w") as out:
        out.write("\n".join(kept) + "\n")


def _setting(path: Path, name: str) -> str | None:
    """A setting's value in a postgresql.auto.conf-style file (None when it is not set)."""
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name:
                value = value.strip()
                return value[1:-1].replace("''", "'") if value.startswith("'") else value
    return None


# ---- the engine -------------------------------------------------------------------------------------------------


@register
class PostgreSQLEngine(DatabaseEngine):
    """Aurora PostgreSQL as PostgreSQL: one template data directory per labkit home, copied for each new writer."""

    rds_engines = ("postgresql", "aurora-postgresql", "postgres")
    default_port = 5432
    identity_sql = "SELECT aurora_db_instance_identifier()"

    def __init__(self) -> None:
        self._binaries: Binaries | None = None
        self._account: ServerAccount | None = None
        self._template: Path | None = None
        self._data_root: Path | None = None
        self._lock = threading.Lock()

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    @property
    def account(self) -> ServerAccount:
        if self._account is None:
            self._account = ServerAccount.for_this_process()
        return self._account

    def check_installed(self) -> None:
        self._binaries = find_binaries()
        self._account = ServerAccount.for_this_process()

    def version(self) -> str:
        self.check_installed()
        return self.binaries.version()

    def prepare(self, data_root: Path, admin_password: str, repl_password: str) -> None:
        with self._lock:
            self._data_root = data_root
            if self._template is None:
                self._template = self._ensure_template(data_root, admin_password, repl_password)

    def server(
        self, name: str, datadir: Path, port: int, server_id: int, admin_password: str, repl_password: str
    ) -> PostgreSQLServer:
        if self._template is None:
            raise SandboxError("the PostgreSQL template is not prepared", field=name, fix="call prepare() first")
        server = PostgreSQLServer(
            name, datadir, port, server_id, admin_password, repl_password, self.binaries, self.account, self._template
        )
        server.tls_root = self._data_root
        return server

    def _ensure_template(self, root: Path, admin_password: str, repl_password: str) -> Path:
        """An initialised data directory to copy for each new writer (made once per labkit home, about 2 s).

        initdb (its trust rules are never used: they are replaced before anything listens), then pg_hba.conf and
        the settings, then in single-user mode (no port, no pg_hba.conf) the roles, each password as a SCRAM
        verifier, and the identity functions.
        """
        private_dir(root)
        template = root / TEMPLATE_DIR
        if (template / READY).exists() and (template / DATA / "PG_VERSION").exists():
            return template
        shutil.rmtree(template, ignore_errors=True)  # a half-made template from an interrupted run: no data in it
        for old in OLD_TEMPLATES:  # copied from, never served: each is initdb's output and the fixed SQL below
            shutil.rmtree(root / old, ignore_errors=True)
        template.mkdir(mode=0o700)
        self.account.own(template)
        log = _private_file(template / "template.log")
        initdb = self.binaries.program("initdb")
        with self.account.reach(template) as ((folder,), how), log.open("a") as out:
            done = subprocess.run(
                [initdb, "-D", f"{folder}/{DATA}", f"--username={ADMIN_USER}", "--auth=trust", "--encoding=UTF8",
                 "--locale=C", "--wal-segsize=1", "--no-instructions"],  # 1 MB WAL files: smaller base backups
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False, **how,
            )  # fmt: skip
        if done.returncode != 0:
            raise SandboxError(f"initdb failed (see {log})", field="postgres", fix="check the log; " + install_hint())
        data = template / DATA
        (data / "pg_hba.conf").write_text(HBA)  # in place: the file keeps its owner
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\n# labkit sandbox\n" + "".join(f"{k} = {v}\n" for k, v in SERVER_SETTINGS.items()))
        _private_file(data / PASSFILE, f"*:*:*:{REPLICATION_USER}:{repl_password}\n")
        self.account.own(data / PASSFILE)
        roles = (
            f"ALTER ROLE {ADMIN_USER} PASSWORD {_literal(scram_verifier(admin_password))};\n\n"
            f"CREATE ROLE {REPLICATION_USER} LOGIN REPLICATION PASSWORD {_literal(scram_verifier(repl_password))};\n\n"
            f"CREATE ROLE {MASTER_ROLE} NOLOGIN CREATEDB;\n\n"
            f"GRANT pg_read_all_stats TO {MASTER_ROLE};\n\n"
        )
        public = f"GRANT CREATE ON SCHEMA public TO {MASTER_ROLE};\n\n"
        for database, sql in (("template1", roles + IDENTITY_FUNCTIONS), ("postgres", public + IDENTITY_FUNCTIONS)):
            self._single_user(template, database, sql, log)
        _private_file(template / READY, "ok")
        owner_only(template)
        return template

    def _single_user(self, template: Path, database: str, sql: str, log: Path) -> None:
        """Run `sql` in single-user mode on the template's data (no port, no pg_hba.conf); statements end with ;
        and an empty line."""
        postgres = self.binaries.program("postgres")
        with self.account.reach(template / DATA) as ((folder,), how), log.open("a") as out:
            done = subprocess.run(
                [postgres, "--single", "-j", "-D", folder, database], input=sql.encode(), stdout=out,
                stderr=subprocess.STDOUT, check=False, **how,
            )  # fmt: skip
        if done.returncode != 0 or "ERROR:" in log.read_text(errors="replace"):
            raise SandboxError(
                f"preparing the PostgreSQL template failed (see {log})", field="postgres", fix=install_hint()
            )


# ---- one server --------------------------------------------------------------------------------------------------


def _first_row(connection: psycopg.Connection[Any], query: str) -> dict[str, Any] | None:
    from psycopg.rows import dict_row  # only a PostgreSQL lab loads the driver

    row: dict[str, Any] | None = connection.cursor(row_factory=dict_row).execute(query).fetchone()
    return row


class PostgreSQLServer(DatabaseServer):
    """One postgres process (and its data directory) standing in for one Aurora DB instance."""

    def __init__(
        self,
        name: str,
        datadir: Path,
        port: int,
        server_id: int,
        admin_password: str,
        repl_password: str,
        binaries: Binaries,
        account: ServerAccount,
        template: Path,
    ) -> None:
        self.name = name
        self.datadir = datadir  # the instance's directory: the data directory (pgdata) and the log beside it
        self.port = port
        self.server_id = server_id
        self.admin_password = admin_password
        self.repl_password = repl_password
        self.binaries = binaries
        self.account = account
        self.template = template
        self.process: subprocess.Popen[bytes] | None = None
        import psycopg  # only a PostgreSQL lab makes a PostgreSQL server, and loads the driver

        self._monitor = StatusConnection(self.admin, _first_row, (psycopg.OperationalError,))
        self._broken: str | None = None  # why it can never continue from its data (a rewind that failed)
        self._log_from = 0  # where this start's part of the log begins
        self._log_read = 0
        self._log_says: set[str] = set()  # what it said since then: "broken", "no-slot"

    @property
    def data(self) -> Path:
        return self.datadir / DATA

    @property
    def log(self) -> Path:
        return self.datadir / LOG

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def _running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ---- connections -------------------------------------------------------------------------------------

    def admin(self, port: int | None = None, dbname: str = "postgres", timeout: float = 2) -> psycopg.Connection[Any]:
        """An autocommit connection as the hidden superuser (to this server, or to the one on `port`)."""
        import psycopg  # only a PostgreSQL lab loads the driver (a MySQL-only sandbox never does)

        return psycopg.connect(
            host="127.0.0.1", port=port or self.port, user=ADMIN_USER, password=self.admin_password, dbname=dbname,
            autocommit=True, connect_timeout=max(2, int(timeout)), application_name="labkit-sandbox",
            options="-c statement_timeout=30000",
        )  # fmt: skip

    def execute(self, *statements: Any, args: tuple[object, ...] | None = None, port: int | None = None) -> list[Any]:
        """Run statements as the admin (each with `args`, when given); returns the last one's rows."""
        rows: list[Any] = []
        with self.admin(port) as conn:
            for statement in statements:
                cursor = conn.execute(statement, args)
                rows = cursor.fetchall() if cursor.description else []
        return rows

    def _status(self, query: str) -> dict[str, Any] | None:
        """The first row of a read-only status query, on the connection kept for them."""
        return self._monitor.first_row(query)

    def _in_recovery(self) -> bool:
        row = self._status("SELECT pg_is_in_recovery() AS recovery")
        return bool(row and row["recovery"])

    # ---- positions ----------------------------------------------------------------------------------------

    def position(self) -> str:
        """On the writer, the end of the WAL it flushed (every commit it acknowledged is before it); on a standby,
        what it replayed (a restarted writer replays all of its WAL before it answers); stopped, its last
        checkpoint (a fenced server's shutdown checkpoint, after everything it committed)."""
        if not self._running():
            return self._controldata().get("Latest checkpoint location", "")
        row = self._status(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
            "ELSE pg_current_wal_flush_lsn() END::text AS position"
        )
        return str(row["position"] or "") if row else ""

    def holds(self, position: str) -> bool:
        """This server has everything up to `position`. (An LSN alone: the reconciler asks only a server that
        streams from the position's server, so both are on one history.)"""
        return _lsn(self.position()) >= _lsn(position)

    def caught_up_position(self) -> str | None:
        """What this standby received (flushed) from its writer, to be replayed before a promotion."""
        if not self._running():
            return None
        row = self._status("SELECT pg_last_wal_receive_lsn()::text AS received")
        return str(row["received"]) if row and row["received"] else None

    # ---- replication state --------------------------------------------------------------------------------

    def replication_source_port(self) -> int | None:
        """The port its primary_conninfo names (None for a writer, or a standby pointed at nobody)."""
        conninfo = _setting(self.data / "postgresql.auto.conf", "primary_conninfo") or ""
        found = re.search(r"\bport=(\d+)", conninfo)
        return int(found.group(1)) if found else None

    def replication_state(self) -> str:
        """REPLICATING while its WAL receiver streams; BROKEN when its log says it can never continue (see
        BROKEN_MARKERS) or a rewind failed; STOPPED for a writer, a stopped server, a standby pointed at nobody or
        at a writer without its slot (pointing it again makes the slot); else CONNECTING."""
        if self._broken:
            return BROKEN
        if not self._running():
            return STOPPED
        row = self._status(
            "SELECT pg_is_in_recovery() AS recovery, (SELECT status FROM pg_stat_wal_receiver) AS receiver"
        )
        if not row or not row["recovery"]:
            return STOPPED
        said = self._read_log()
        if "broken" in said:
            return BROKEN
        if row["receiver"] == "streaming":
            return REPLICATING
        if self.replication_source_port() is None or "no-slot" in said:
            return STOPPED
        return CONNECTING

    def _read_log(self) -> set[str]:
        """What the log said since this start (read on from where the last call stopped, and a little before it:
        a line the server was writing then is read whole now)."""
        try:
            with self.log.open("rb") as log:
                log.seek(max(self._log_read - 256, self._log_from))
                text = log.read().decode(errors="replace")
                self._log_read = log.tell()
        except OSError:
            return self._log_says
        if any(marker in text for marker in BROKEN_MARKERS):
            self._log_says.add("broken")
        if SLOT_MISSING.search(text):
            self._log_says.add("no-slot")
        return self._log_says

    # ---- the process ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server in recovery (it takes no writes until promoted), from a copy of the template when it
        has no data yet; returns at once (see wait_ready)."""
        if self._running():
            return
        self._make_data()
        self._wait_for_previous_server()
        self.account.own(_private_file(self.data / "standby.signal"))
        self._write_tls()
        self._open_log_section("starting")
        postgres = self.binaries.program("postgres")
        with self.account.reach(self.data) as ((folder,), how), self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [postgres, "-D", folder, "-c", f"port={self.port}", "-c", f"cluster_name={self.name}",
                 "-c", f"labkit.datadir={self.datadir}", "-c", "ssl=on", "-c", f"ssl_cert_file={TLS_CERT}",
                 "-c", f"ssl_key_file={TLS_KEY}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=functools.partial(die_with_parent, signal.SIGINT), **how,
            )  # fmt: skip

    def _write_tls(self) -> None:
        """The certificate and key in the data directory, the account's (under root the servers cannot reach the
        home; relative paths are the data directory's), and pg_hba.conf as the cluster's rds.force_ssl says."""
        for path in self.certificate_files(self.data):
            self.account.own(path)
        self._write_hba()

    def _write_hba(self) -> None:
        """pg_hba.conf in place (it keeps its owner): hostssl rules while TLS is required, host rules otherwise."""
        wanted = HBA_SECURE if self.secure_transport else HBA
        hba = self.data / "pg_hba.conf"
        if hba.read_text() != wanted:
            hba.write_text(wanted)

    def require_secure_transport(self, required: bool) -> None:
        """rds.force_ssl: pg_hba.conf's rules become hostssl (or host again), and the server reloads it; sessions
        already open keep going, new ones follow the rules (as on Aurora, where the parameter is dynamic)."""
        self.secure_transport = required
        self._write_hba()
        self.execute("SELECT pg_reload_conf()")

    def _make_data(self) -> None:
        """The instance's directory (0700, the account's) and, when it has no data directory, a copy of the
        template, marked blank until it takes a write."""
        private_dir(self.datadir.parent)
        if not self.datadir.exists():
            self.datadir.mkdir(mode=0o700)
        self.datadir.chmod(0o700)
        self.account.own(self.datadir)
        if not (self.data / "PG_VERSION").exists():
            if self.data.exists() and not (self.datadir / BLANK).exists():  # not known to be a copy: kept
                self.data.rename(self.datadir / f"{DATA}.incomplete-{time.strftime('%Y%m%dT%H%M%S')}")
            shutil.rmtree(self.data, ignore_errors=True)  # a copy of the template an interrupted start left half-made
            _private_file(self.datadir / BLANK, "a copy of the template that never took a write\n")
            shutil.copytree(self.template / DATA, self.data, symlinks=True)
            self.account.own(self.data, tree=True)
        if not self.log.exists():
            _private_file(self.log)
        owner_only(self.datadir)

    def _open_log_section(self, what: str) -> None:
        with self.log.open("a") as log:
            log.write(f"---- labkit: {what} {self.name} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        self._log_from = self._log_read = self.log.stat().st_size
        self._log_says = set()

    def _wait_for_previous_server(self, timeout: float = 15.0) -> None:
        """Before starting on this data: a postmaster of it still running (the daemon that started it died, and
        it is shutting down) is waited for, and so are its last children, which hold its shared memory (a new
        postmaster refuses to start until they are gone). A lock file naming another program's pid is stale."""
        lock = self.data / "postmaster.pid"
        try:
            lines = lock.read_text().splitlines()
        except OSError:
            return
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
        deadline = time.monotonic() + timeout
        if pid and pid_alive(pid) and f"labkit.datadir={self.datadir}" in process_args(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # a fast shutdown; then an immediate one
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
        shmid = lines[6].split()[-1] if len(lines) > 6 and lines[6].split() else None
        while shmid and _attached(shmid) and time.monotonic() < deadline + 10:
            time.sleep(0.02)
        if pid and not (pid_alive(pid) and f"labkit.datadir={self.datadir}" in process_args(pid)):
            lock.unlink(missing_ok=True)  # its server is gone (its pid may name another program now)

    def wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg  # only a PostgreSQL lab loads the driver

        wait_accepting(self, timeout, program="postgres", log=self.log, refused=psycopg.OperationalError, poll=0.05)

    def error_tail(self, lines: int = 3) -> str:
        try:
            with self.log.open("rb") as log:
                log.seek(self._log_from)
                text = log.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        errors = [line for line in text.splitlines() if any(k in line for k in ("FATAL:", "PANIC:", "ERROR:"))]
        return " | ".join(errors[-lines:]) or "(no errors logged)"

    def stop(self, timeout: float = 10.0) -> None:
        """A fast shutdown (sessions end, a checkpoint, the standbys get everything); immediate after `timeout`."""
        if self.process is not None and self.process.poll() is None:
            for signum, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, None)):
                self.process.send_signal(signum)
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.process = None
        self._monitor.forget()

    def remove(self) -> None:
        """Stop at once and delete the data: nothing is kept, so there is nothing to flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # an immediate shutdown: the postmaster takes its children
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._monitor.forget()
        shutil.rmtree(self.datadir, ignore_errors=True)

    def _controldata(self) -> dict[str, str]:
        """pg_controldata of the (stopped) data directory, as name -> value."""
        with self.account.reach(self.data) as ((folder,), how):
            out = subprocess.run(
                [self.binaries.program("pg_controldata"), "-D", folder], capture_output=True, text=True, check=False,
                **how,
            )  # fmt: skip
        return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.stdout.splitlines())}

    # ---- roles ------------------------------------------------------------------------------------------------

    def bootstrap_writer(
        self, master_user: str, master_password: str, database: str | None, repl_password: str
    ) -> None:
        """A cluster's first writer: take writes, then the learner's master user (in rds_superuser, with its
        password as a SCRAM verifier) and the initial database, owned by it. Safe to run again."""
        from psycopg import sql  # only a PostgreSQL lab loads the driver

        if master_user in RESERVED_USERS or master_user.startswith("pg_"):
            raise SandboxError(
                f"MasterUsername {master_user!r} is reserved", field="MasterUsername", fix="choose another name"
            )
        self.promote(catch_up_to=None)
        user = sql.Identifier(master_user)
        if not self.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", args=(master_user,)):
            self.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {} IN ROLE {}").format(
                    user, sql.Literal(scram_verifier(master_password)), sql.Identifier(MASTER_ROLE)
                )
            )
        if database and not self.execute("SELECT 1 FROM pg_database WHERE datname = %s", args=(database,)):
            self.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), user))

    def set_password(self, user: str, password: str) -> None:
        """The role's password as a SCRAM verifier (the standbys get it through replication)."""
        from psycopg import sql  # only a PostgreSQL lab loads the driver

        verifier = sql.Literal(scram_verifier(password))
        self.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), verifier))

    # ---- replication ------------------------------------------------------------------------------------------

    def replicate_from(self, writer_port: int, repl_password: str) -> None:
        """Become a hot standby of the writer on `writer_port`, continuing from what it holds.

        A standby that already streams from that writer only gets its slot checked. Otherwise the server stops; a
        blank one is replaced by a base backup of the writer; one with data is rewound to the writer's history
        (pg_rewind: nothing to do when its history is a prefix of the writer's); then it starts as a standby with
        the writer's slot. A rewind that cannot work leaves it stopped and BROKEN, its data untouched."""
        if (
            self._running() and not self._broken and not (self.datadir / BLANK).exists()
            and self.replication_source_port() == writer_port and self._in_recovery()
        ):  # fmt: skip
            self._ensure_slot(writer_port)
            self._open_log_section(f"pointed again at port {writer_port}:")  # what it said before is answered
            return
        self._broken = None
        writer_name = str(self.execute("SELECT current_setting('cluster_name')", port=writer_port)[0][0])
        self.stop()
        if (self.datadir / BLANK).exists() or not (self.data / "PG_VERSION").exists():
            self._base_backup(writer_port)
        elif not self._rewind(writer_port):
            return
        for slot in (self.data / "pg_replslot").glob("*"):  # its slots served standbys when it was a writer
            shutil.rmtree(slot)
        self._ensure_slot(writer_port)
        conninfo = (
            f"host=127.0.0.1 port={writer_port} user={REPLICATION_USER} passfile={PASSFILE} "
            f"application_name={self.name}"
        )
        _set_settings(
            self.data / "postgresql.auto.conf",
            {"primary_conninfo": conninfo, "primary_slot_name": slot_name(self.name), "labkit.writer": writer_name,
             "synchronous_standby_names": None},
        )  # fmt: skip
        self.start()
        self.wait_ready()

    def _ensure_slot(self, writer_port: int) -> None:
        """The writer keeps a physical replication slot for this standby (made now if missing)."""
        self.execute(
            "SELECT pg_create_physical_replication_slot(%s, true) "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
            args=(slot_name(self.name), slot_name(self.name)),
            port=writer_port,
        )

    def _base_backup(self, writer_port: int) -> None:
        """Replace the blank copy of the template with a base backup of the writer (its slot made anew)."""
        slot = slot_name(self.name)
        self.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s AND NOT active",
            args=(slot,),
            port=writer_port,
        )
        shutil.rmtree(self.data, ignore_errors=True)  # a copy of the template that never took a write
        self._open_log_section(f"base backup from port {writer_port} for")
        with self.account.reach(self.datadir) as ((folder,), how), self.log.open("ab") as log:
            how["env"] = {**how["env"], "PGPASSWORD": self.repl_password}
            done = subprocess.run(
                [self.binaries.program("pg_basebackup"), "-D", f"{folder}/{DATA}", "-h", "127.0.0.1",
                 "-p", str(writer_port), "-U", REPLICATION_USER, "-X", "stream", "-S", slot, "-C",
                 "--checkpoint=fast", "--no-password", "--no-sync"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False, **how,
            )  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            self.start()  # blank again, pointed at nobody: STOPPED, so the reconciler points it again
            raise SandboxError(
                f"the base backup of {self.name} from port {writer_port} failed: {self.error_tail()}",
                field=self.name,
                fix=f"see {self.log}",
            )
        (self.datadir / BLANK).unlink(missing_ok=True)
        owner_only(self.datadir)

    def _rewind(self, writer_port: int) -> bool:
        """pg_rewind the stopped server to the writer's history. False (and BROKEN, or pointed at nobody when the
        writer could not be reached) when it cannot.

        The writer checkpoints first: pg_rewind reads the source's timeline from its control file, which a just
        promoted server updates only at its next checkpoint (until then it would find "no rewind required")."""
        self.execute("CHECKPOINT", port=writer_port)
        self._open_log_section(f"pg_rewind from port {writer_port} of")
        with self.account.reach(self.data) as ((folder,), how), self.log.open("ab") as log:
            how["env"] = {**how["env"], "PGPASSWORD": self.admin_password}
            done = subprocess.run(
                [self.binaries.program("pg_rewind"), "-D", folder,
                 f"--source-server=host=127.0.0.1 port={writer_port} user={ADMIN_USER} dbname=postgres"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False, **how,
            )  # fmt: skip
        if done.returncode == 0:
            return True
        with self.log.open("rb") as log:
            log.seek(self._log_from)
            said = log.read().decode(errors="replace")
        if "connection to server" in said or "could not connect" in said:
            _set_settings(self.data / "postgresql.auto.conf", {"primary_conninfo": None, "primary_slot_name": None})
            self.start()  # as it was, pointed at nobody: STOPPED, so the reconciler points it again
            return False
        self._broken = f"pg_rewind could not bring it onto the writer's history (see {self.log})"
        return False

    def require_replica_ack(self, required: bool) -> None:
        """synchronous_standby_names 'ANY 1 (*)' (a commit waits until any standby flushed it) or empty (a commit
        waiting for a standby is released at once). When required, wait briefly until a streaming standby counts
        as synchronous, so the next commit waits for it."""
        if required:
            self.execute("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'", "SELECT pg_reload_conf()")
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                row = self._status(
                    "SELECT count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) AS synchronous, "
                    "count(*) FILTER (WHERE state = 'streaming') AS streaming FROM pg_stat_replication"
                )
                if not row or row["synchronous"] or not row["streaming"]:
                    return
                time.sleep(0.02)
        else:
            self.execute("ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")

    def fence(self) -> str:
        """Stop taking writes: a fast shutdown, which sends the standbys everything up to its shutdown checkpoint;
        returns that checkpoint's position. When it did not stop cleanly, it starts again in recovery (taking no
        writes, replaying all it has, serving it to the standbys) and returns what it replayed."""
        if self._running():
            self.stop()
        control = self._controldata()
        if control.get("Database cluster state") in ("shut down", "shut down in recovery"):
            return control.get("Latest checkpoint location", "")
        self.start()
        self.wait_ready()
        return self.position()

    def promote(self, catch_up_to: str | None, timeout: float = 10.0) -> None:
        """Become the writer once it holds `catch_up_to`: wait for its replay to reach it, then rewrite the
        settings a promoted standby must not keep (its upstream; the synchronous standbys, which only the
        reconciler requires), and pg_promote(). When it cannot catch up within `timeout` it stays a standby."""
        if not self._running():
            self.start()  # a fenced server taking writes again: in recovery first, as every start
            self.wait_ready()
        if not self._in_recovery():
            return
        deadline = time.monotonic() + timeout
        while catch_up_to and not self.holds(catch_up_to):
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"{self.name} did not replay the writer's WAL up to {catch_up_to} within {timeout:.0f} s "
                    f"(it holds {self.position() or 'none'}); it stays a replica",
                    field=self.name,
                    fix=f"see {self.log}",
                )
            time.sleep(0.01)
        self.execute(
            "ALTER SYSTEM RESET synchronous_standby_names", "ALTER SYSTEM RESET primary_conninfo",
            "ALTER SYSTEM RESET primary_slot_name", "ALTER SYSTEM RESET labkit.writer", "SELECT pg_reload_conf()",
        )  # fmt: skip
        (self.datadir / BLANK).unlink(missing_ok=True)  # from now on it may hold writes: never replaced by a copy
        promoted = self.execute("SELECT pg_promote(true, 60)")
        if not (promoted and promoted[0][0]):
            raise SandboxError(f"{self.name} did not finish its promotion", field=self.name, fix=f"see {self.log}")


def _attached(shmid: str) -> bool:
    """True while a System V shared memory segment (a postmaster's, by id) has a process attached (Linux)."""
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in rows:
        fields = row.split()
        if len(fields) > 6 and fields[1] == shmid:
            return fields[6] != "0"
    return False
