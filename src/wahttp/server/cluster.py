"""Many workers on one PostgreSQL: which worker runs which session.

Every `wahttp serve` process is a worker. A worker is *live* while its row in `wahttp_workers` is
unexpired (renewed every `interval`, valid for `ttl`) and while it holds its advisory lock, which
PostgreSQL releases the moment the worker's connection ends: a killed worker is seen dead at the
next scan of the others, a hung one when its row expires.

Each session has at most one owner row (`wahttp_session_owners`); only the owner runs the session's
socket, so WhatsApp never sees two (it would close one with 440). A session without a live owner is
an orphan: every scan, each worker claims orphans up to its fair share (sessions / live workers) in
one statement that cannot give a session to two workers, and starts them. Workers above their share
hand sessions back (stop the socket first, then delete the row) so that a new worker gets its part.

A worker fences itself: if it cannot renew its row before it expires (database unreachable, event
loop stalled), or its lock connection ends, it stops every socket it runs before anyone may take
its sessions over, then joins again under a new id. Graceful shutdown stops the sockets and then
deletes the worker's rows, so the others take over at their next scan.

The database may go away at any time (a restart, a failover, minutes of outage): nothing here
may end because of it. Every scan's failure is logged and the next scan runs; fencing always
goes on to rejoin, retrying every interval until the database is back; a scan that finds this
worker without its lock connection fences and rejoins instead of failing; and the scan task is
supervised (restarted should it ever end), with `problem()` telling /health when this worker
cannot do its job (not joined, lease lapsed, scans failing, the loop gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import asyncpg

from wahttp.server.db import Database, DatabaseUnavailable, describe

log = logging.getLogger(__name__)

# An orphan still unclaimed after this many of our scans is taken whatever our share.
STALE_SCANS = 3
# pg_advisory_lock(int4, int4): the first key names wahttp's worker locks ("waht").
LOCK_SPACE = 0x77616874

_LIVE = f"""
    SELECT w.id FROM wahttp_workers w
    WHERE w.expires_at > now()
      AND EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = {LOCK_SPACE}::oid AND l.objid = w.lock_key::bigint::oid)
"""

_CLAIM = f"""
    WITH live AS ({_LIVE}),
    orphans AS (
        SELECT s.id FROM sessions s
        LEFT JOIN wahttp_session_owners o ON o.session_id = s.id
        WHERE (o.session_id IS NULL OR o.worker_id NOT IN (SELECT id FROM live))
          AND ($3::text IS NULL OR s.id = $3)
        ORDER BY s.created_at, s.id
        LIMIT $2
        FOR UPDATE OF s SKIP LOCKED  -- workers claiming at once take different orphans
    )
    , claimed AS (
        INSERT INTO wahttp_session_owners AS o (session_id, worker_id)
        SELECT id, $1 FROM orphans
        ON CONFLICT (session_id) DO UPDATE
            SET worker_id = EXCLUDED.worker_id, state = 'created', since = now(),
                claimed_at = now()
            WHERE o.worker_id = EXCLUDED.worker_id OR o.worker_id NOT IN ({_LIVE})
        RETURNING o.session_id
    )
    SELECT c.session_id, s.push_name FROM claimed c JOIN sessions s ON s.id = c.session_id
"""

_OWNER = f"""
    SELECT o.worker_id, w.url, o.worker_id IN ({_LIVE}) AS live
    FROM wahttp_session_owners o LEFT JOIN wahttp_workers w ON w.id = o.worker_id
    WHERE o.session_id = $1
"""

_SHARE = f"""
    SELECT (SELECT count(*) FROM sessions) AS sessions,
           (SELECT count(*) FROM ({_LIVE}) live) AS workers,
           (SELECT count(*) FROM wahttp_session_owners WHERE worker_id = $1) AS mine
"""

# What a scan and a rejoin survive: the database gone (OSError covers DatabaseUnavailable and
# TimeoutError), an error answer, a connection closed under us.
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_STATES = f"""
    SELECT o.session_id, o.state, o.worker_id IN ({_LIVE}) AS live
    FROM wahttp_session_owners o
"""


@dataclass(frozen=True, slots=True)
class Owner:
    worker_id: str
    url: str | None
    live: bool


@dataclass(frozen=True, slots=True)
class SessionPlacement:
    state: str
    live: bool


def fair_share(sessions: int, workers: int) -> int:
    """How many sessions each live worker should run (the last may run fewer)."""
    return math.ceil(sessions / max(workers, 1))


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Cluster:
    """This worker's membership: its row and lock, its sessions' owner rows, takeover and hand-back.

    `start_session(session_id, push_name)` and `stop_session(session_id)` run and stop a session's
    socket here; the cluster calls them for sessions it claims, loses or hands back, and
    `hosted()` names the sessions this worker runs.
    """

    def __init__(
        self,
        db: Database,
        *,
        start_session: Callable[[str, str | None], Awaitable[None]],
        stop_session: Callable[[str], Awaitable[None]],
        hosted: Callable[[], AbstractSet[str]],
        url: str | None = None,
        ttl: float = 20.0,
        interval: float = 3.0,
        rebalance: bool = True,
    ) -> None:
        if interval * 2 >= ttl:
            raise ValueError("the lease interval must be under half the lease ttl")
        self.db = db
        self.url = url
        self.ttl = ttl
        self.interval = interval
        self.rebalance = rebalance
        self.worker_id = new_worker_id()
        self._start_session = start_session
        self._stop_session = stop_session
        self._hosted = hosted
        self._lock_conn: Any = None  # a pool connection held for the worker's lifetime
        self._lock_key = 0
        self._valid_until = 0.0  # monotonic: our row is surely unexpired until then
        self._task: asyncio.Task[None] | None = None
        self._fence_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._orphan_scans: dict[str, int] = {}  # orphan -> consecutive scans it was seen in
        self._mutex = asyncio.Lock()  # claims, hand-backs and fencing one at a time
        self._stopping = False
        self._unhosted: dict[str, int] = {}  # owned but not running here -> scans seen so
        self._last_scan = 0.0  # monotonic time of the last scan that completed
        self._settle_until = 0.0  # monotonic: after a rejoin, claim no orphans before then
        self.loop_restarts = 0  # times the supervisor had to start the scan loop again

    # -- membership ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Join: register, take this worker's share of the orphans, and keep scanning."""
        await self._join()
        await self.scan()
        self._last_scan = time.monotonic()
        self._start_loop()

    def _start_loop(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="cluster")
        self._task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """The supervisor: the scan loop must run for as long as the worker does."""
        if self._stopping or task is not self._task:
            return
        error = None if task.cancelled() else task.exception()
        self.loop_restarts += 1
        log.error(
            "worker %s: the cluster loop ended (%s); starting it again",
            self.worker_id,
            "cancelled" if error is None else describe(error),
        )
        self._start_loop()

    def problem(self) -> str | None:
        """Why this worker cannot do its job now (None: it can), for /health."""
        if self._stopping:
            return "stopping"
        if self._task is None or self._task.done():
            return "cluster loop not running"
        if self._lock_conn is None:
            return "not a cluster member (rejoining)"
        now = time.monotonic()
        if now >= self._valid_until:
            return "lease expired"
        if now - self._last_scan > max(self.ttl, 3 * self.interval):
            return "cluster scans are failing"
        return None

    async def _join(self) -> None:
        try:
            conn = await self.db.pool.acquire(timeout=self.db.acquire_timeout)
        except _DB_ERRORS as exc:
            raise DatabaseUnavailable(f"cannot join: {describe(exc)}") from exc
        try:
            while True:
                key = random.randrange(1, 1 << 31)  # a key, not a secret
                if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_SPACE, key):
                    break
            started = time.monotonic()
            await conn.execute(
                "INSERT INTO wahttp_workers (id, url, lock_key, expires_at)"
                " VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
                self.worker_id,
                self.url,
                key,
                self.ttl,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                conn.terminate()  # it may hold a lock: never hand it back to the pool
            with contextlib.suppress(Exception):
                await self.db.pool.release(conn)
            raise
        self._lock_conn, self._lock_key = conn, key
        self._valid_until = started + self.ttl
        conn.add_termination_listener(self._on_lock_lost)
        log.info("worker %s joined (url %s)", self.worker_id, self.url or "none")

    def _on_lock_lost(self, _conn: object) -> None:
        if not self._stopping:
            log.error("worker %s lost its database connection: fencing", self.worker_id)
            self._fence_soon()

    def _fence_soon(self) -> None:
        if self._fence_task is None or self._fence_task.done():
            self._fence_task = asyncio.get_running_loop().create_task(self._fence())

    async def _renew(self) -> bool:
        """Extend our row; False when it had expired or vanished (others may own our sessions)."""
        if time.monotonic() >= self._valid_until:
            return False
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(self._valid_until - started, 0.01)):
                renewed = await self._renew_row()
        except (*_DB_ERRORS, AttributeError) as exc:
            log.warning("worker %s could not renew its lease: %s", self.worker_id, describe(exc))
            return time.monotonic() < self._valid_until - self.interval
        if not renewed:
            return False
        self._valid_until = started + self.ttl
        return True

    async def _renew_row(self) -> bool:
        conn = self._lock_conn
        if conn is None:  # fenced and not joined again yet: never renew a row we gave up
            return False
        renewed = await conn.fetchval(
            "UPDATE wahttp_workers SET expires_at = now() + make_interval(secs => $2)"
            " WHERE id = $1 AND expires_at > now() RETURNING true",
            self.worker_id,
            self.ttl,
        )
        return bool(renewed)

    async def _fence(self) -> None:
        """Stop every socket this worker runs, then join again under a new id.

        Whatever fails on the way (the database is likely down) is logged, never the end of
        it: the rejoin is retried every interval until it succeeds or the worker stops."""
        async with self._mutex:
            hosted = sorted(self._hosted())
            log.error("worker %s fences itself: stopping %d sessions", self.worker_id, len(hosted))
            results = await asyncio.gather(
                *(self._stop_session(s) for s in hosted), return_exceptions=True
            )
            for session_id, result in zip(hosted, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("stopping session %s: %s", session_id, describe(result))
            try:
                await self._leave(graceful=False)
            except Exception as exc:  # _leave is best effort; fencing must go on to rejoin
                log.warning("worker %s: leaving failed: %s", self.worker_id, describe(exc))
                self._lock_conn = None
            self._orphan_scans.clear()
            self._unhosted.clear()
        if self._stopping:
            return
        old_id, self.worker_id = self.worker_id, new_worker_id()
        while not self._stopping:
            try:
                await self._join()
                break
            except Exception as exc:
                log.warning("rejoining failed (%s); retrying", describe(exc))
                await asyncio.sleep(self.interval)
        # After a database outage every worker rejoins within about an interval of its return:
        # claiming at once, the first back would take every session and hand most back again.
        self._settle_until = time.monotonic() + 2 * self.interval
        with contextlib.suppress(*_DB_ERRORS):  # our row from before, if _leave could not
            async with asyncio.timeout(self.interval), self.db.acquire() as conn:
                await conn.execute("DELETE FROM wahttp_workers WHERE id = $1", old_id)
        log.info("worker %s rejoined (was %s)", self.worker_id, old_id)
        self._wake.set()

    async def _leave(self, *, graceful: bool) -> None:
        """Delete our rows (best effort) and give up the lock: cleanly, or by dropping its
        connection when it may be stuck (the server then releases the lock)."""
        conn, self._lock_conn = self._lock_conn, None
        with contextlib.suppress(
            TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError
        ):
            async with asyncio.timeout(self.interval), self.db.acquire() as c, c.transaction():
                await c.execute(
                    "DELETE FROM wahttp_session_owners WHERE worker_id = $1", self.worker_id
                )
                await c.execute("DELETE FROM wahttp_workers WHERE id = $1", self.worker_id)
        if conn is None:
            return
        # The pool may have taken a broken connection back already: then this raises.
        with contextlib.suppress(Exception):
            conn.remove_termination_listener(self._on_lock_lost)
        if graceful:
            with contextlib.suppress(
                TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError
            ):
                async with asyncio.timeout(self.interval):
                    await conn.execute(
                        "SELECT pg_advisory_unlock($1, $2)", LOCK_SPACE, self._lock_key
                    )
        else:
            with contextlib.suppress(Exception):
                conn.terminate()
        with contextlib.suppress(Exception):
            await self.db.pool.release(conn)

    async def stop(self, stop_sessions: Callable[[], Awaitable[None]]) -> None:
        """Stop scanning, stop the sessions, then leave: others take them over at their next scan
        (never while our sockets are still open)."""
        self._stopping = True
        for task in (self._task, self._fence_task):
            if task is not None:
                task.cancel()
                # A task that had failed must not fail the shutdown.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        async with self._mutex:
            await stop_sessions()
            await self._leave(graceful=True)
        log.info("worker %s left", self.worker_id)

    # -- the scan ------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval * random.uniform(0.8, 1.2)):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._tick()
            except _DB_ERRORS as exc:
                log.warning("cluster scan failed: %s", describe(exc))
            except Exception:  # a bug: logged with its trace, and the loop goes on
                log.exception("cluster scan failed")

    async def _tick(self) -> None:
        if self._fence_task is not None and not self._fence_task.done():
            return
        if self._lock_conn is None or not await self._renew():
            self._fence_soon()  # stops what still runs here, then rejoins
            return
        await self.scan()
        self._last_scan = time.monotonic()

    async def scan(self) -> None:
        """Drop sessions we lost, claim our share of the orphans, hand back what is over it."""
        async with self._mutex:
            if self._lock_conn is None:
                return
            await self._reconcile()
            if time.monotonic() < self._settle_until:
                return  # just rejoined: the others are rejoining too (see _fence)
            async with self.db.acquire() as conn:
                share = await conn.fetchrow(_SHARE, self.worker_id)
            target = fair_share(share["sessions"], share["workers"])
            mine = share["mine"]
            if mine < target:
                await self._claim_orphans(target - mine)
            elif self.rebalance and mine > target:
                await self._hand_back(min(mine - target, 5))
            await self._claim_stale_orphans()

    async def _reconcile(self) -> None:
        async with self.db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT session_id FROM wahttp_session_owners WHERE worker_id = $1", self.worker_id
            )
        owned = {r["session_id"] for r in rows}
        hosted = self._hosted()
        for session_id in sorted(hosted - owned):
            log.warning("session %s is no longer ours: stopping its socket", session_id)
            await self._stop_session(session_id)
        # Ours but not running here (its start failed, or it was stopped while its row could
        # not be deleted): seen in two scans, give it back, so a scan starts it again.
        unhosted = {s: self._unhosted.get(s, 0) + 1 for s in owned - hosted}
        self._unhosted = {s: n for s, n in unhosted.items() if n < 2}
        for session_id in sorted(s for s, n in unhosted.items() if n >= 2):
            log.warning("session %s is ours but not running: giving it back", session_id)
            async with self.db.acquire() as conn:
                await conn.execute(
                    "DELETE FROM wahttp_session_owners WHERE session_id = $1 AND worker_id = $2",
                    session_id,
                    self.worker_id,
                )

    async def _claim_orphans(self, limit: int, only: str | None = None) -> list[str]:
        async with self.db.acquire() as conn:
            rows = await conn.fetch(_CLAIM, self.worker_id, limit, only)
        claimed = [r["session_id"] for r in rows]
        for row in rows:
            try:
                await self._start_session(row["session_id"], row["push_name"])
            except Exception:  # its row stays ours; _reconcile gives it back
                log.exception("session %s could not be started", row["session_id"])
        if claimed:
            log.info("worker %s took %d sessions", self.worker_id, len(claimed))
        return claimed

    async def _claim_stale_orphans(self) -> None:
        """Orphans nobody claimed in STALE_SCANS scans (others full or stuck): take them anyway."""
        async with self.db.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT s.id FROM sessions s
                    LEFT JOIN wahttp_session_owners o ON o.session_id = s.id
                    WHERE o.session_id IS NULL OR o.worker_id NOT IN ({_LIVE})"""
            )
        seen = {r["id"]: self._orphan_scans.get(r["id"], 0) + 1 for r in rows}
        self._orphan_scans = seen
        for session_id in sorted(s for s, scans in seen.items() if scans >= STALE_SCANS):
            await self._claim_orphans(1, only=session_id)

    async def _hand_back(self, count: int) -> None:
        """Stop `count` of our sessions and delete their rows for an under-loaded worker."""
        async with self.db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT session_id FROM wahttp_session_owners WHERE worker_id = $1"
                " AND state IN ('open', 'reconnecting', 'stopped')"
                " ORDER BY claimed_at DESC LIMIT $2",
                self.worker_id,
                count,
            )
        for row in rows:
            session_id = row["session_id"]
            await self._stop_session(session_id)
            async with self.db.acquire() as conn:
                await conn.execute(
                    "DELETE FROM wahttp_session_owners WHERE session_id = $1 AND worker_id = $2",
                    session_id,
                    self.worker_id,
                )
            log.info("worker %s handed session %s back", self.worker_id, session_id)

    # -- for the API ---------------------------------------------------------------------------
    async def claim(self, session_id: str) -> bool:
        """Own this session now if nobody live does (it is then started here); True if ours."""
        async with self._mutex:
            if self._lock_conn is None:
                return False
            if session_id in self._hosted():
                return True
            return bool(await self._claim_orphans(1, only=session_id))

    async def elsewhere(self, session_id: str) -> tuple[str, str] | None:
        """(url, worker id) of the live worker running this session if it is not this one."""
        if session_id in self._hosted():
            return None
        try:
            owner = await self.owner(session_id)
        except _DB_ERRORS:
            return None  # answered here: 503 database_unavailable while it is down
        if owner is None or not owner.live or owner.worker_id == self.worker_id or not owner.url:
            return None
        return owner.url, owner.worker_id

    async def owner(self, session_id: str) -> Owner | None:
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(_OWNER, session_id)
        return None if row is None else Owner(row["worker_id"], row["url"], bool(row["live"]))

    async def placements(self) -> dict[str, SessionPlacement]:
        """Every owned session's last reported state, and whether its owner is live."""
        async with self.db.acquire() as conn:
            rows = await conn.fetch(_STATES)
        return {r["session_id"]: SessionPlacement(r["state"], bool(r["live"])) for r in rows}

    async def record_state(self, session_id: str, state: str) -> None:
        """The owner writes each state change, so any worker can list every session's state.
        Best effort: with the database down the change is skipped (the next one is written)."""
        with contextlib.suppress(*_DB_ERRORS):
            async with self.db.acquire() as conn:
                await conn.execute(
                    "UPDATE wahttp_session_owners SET state = $3, since = now()"
                    " WHERE session_id = $1 AND worker_id = $2",
                    session_id,
                    self.worker_id,
                    state,
                )

    def wake(self) -> None:
        """Scan now (e.g. after a session was created elsewhere)."""
        self._wake.set()
