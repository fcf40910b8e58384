"""Retention: old message rows and finished webhook deliveries are deleted, periodically.

`messages` rows (statuses, and for a sent message its payload, kept to answer retry receipts)
older than WAHTTP_MESSAGE_RETENTION_DAYS (default 30, WhatsApp's own offline window, after
which no retry receipt can come; 0 keeps them forever) go, except a row touched within the last
day (a receipt just came: a retry may follow). Delivered and dead webhook deliveries older
than WAHTTP_WEBHOOK_RETENTION_DAYS (default 7; 0: forever) go through `Webhooks.prune`, which
never deletes a pending (undelivered) row.

Safe with many workers: a run takes a session advisory lock with `pg_try_advisory_lock`, so one
worker prunes at a time and the others skip their turn; every DELETE is idempotent anyway. Rows
go in batches of `batch`, each its own short statement (ctids picked by the created_at index
under a LIMIT), so a big table is never locked for long. Never logs a message's content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wahttp.server.db import Database, describe, is_unavailable

if TYPE_CHECKING:
    from wahttp.server.webhooks import Webhooks

log = logging.getLogger(__name__)

DAY = 86400.0
# A message row touched this recently is kept whatever its age (a receipt came; a retry may).
KEEP_ACTIVE = DAY
BATCH = 1000
# Session-level advisory lock (one bigint key: the first 8 bytes of sha256("wahttp:retention")).
RETENTION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"wahttp:retention").digest()[:8], signed=True)
_DELETE_MESSAGES = """
DELETE FROM messages WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM messages
    WHERE created_at < now() - make_interval(secs => $1::float8)
      AND updated_at < now() - make_interval(secs => $2::float8)
    LIMIT $3))
  AND created_at < now() - make_interval(secs => $1::float8)
  AND updated_at < now() - make_interval(secs => $2::float8)
"""


@dataclass(frozen=True, slots=True)
class Pruned:
    messages: int
    webhook_deliveries: int


class Retention:
    """The periodic pruner of one worker; `prune_once` runs one pass on demand."""

    def __init__(
        self,
        db: Database,
        webhooks: Webhooks | None,
        *,
        message_days: float,
        webhook_days: float,
        interval: float = 3600.0,
        batch: int = BATCH,
    ) -> None:
        self._db = db
        self._webhooks = webhooks
        self.message_days = message_days
        self.webhook_days = webhook_days
        self.interval = interval
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.message_days > 0 or (self.webhook_days > 0 and self._webhooks is not None)

    def start(self) -> None:
        if self._task is None and self.enabled:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        # The first pass soon after start (jittered: workers started together do not collide),
        # then every interval (jittered by 10%).
        delay = min(self.interval, 300.0) * random.uniform(0.1, 1.0)
        while True:
            await asyncio.sleep(delay)
            delay = self.interval * random.uniform(0.9, 1.1)
            try:
                await self.prune_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_unavailable(exc):  # a database outage: one line, no trace
                    log.warning("retention: the database is unavailable (%s)", describe(exc))
                else:
                    log.exception("retention: pruning failed; trying again in %.0fs", delay)

    async def prune_once(self) -> Pruned | None:
        """Delete what is past retention; None when another worker is pruning right now."""
        async with self._db.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_KEY):
                log.debug("retention: another worker is pruning")
                return None
            try:
                messages = 0
                if self.message_days > 0:
                    age = self.message_days * DAY
                    while True:
                        status: str = await conn.execute(
                            _DELETE_MESSAGES, age, KEEP_ACTIVE, self.batch
                        )
                        deleted = int(status.rsplit(maxsplit=1)[-1])
                        messages += deleted
                        if deleted < self.batch:
                            break
                deliveries = 0
                if self.webhook_days > 0 and self._webhooks is not None:
                    deliveries = await self._webhooks.prune(self.webhook_days * DAY, self.batch)
            finally:
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_KEY)
        if messages or deliveries:
            log.info(
                "retention: deleted %d messages older than %g days and %d webhook deliveries"
                " older than %g days",
                messages,
                self.message_days,
                deliveries,
                self.webhook_days,
            )
        return Pruned(messages, deliveries)
