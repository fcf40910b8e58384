"""LISTEN on the outbox's NOTIFY channel, on a pool connection kept for it, to wake a deliverer.

Events wake the deliverer at once in process (`Deliverer.wake`) and across processes by
`LISTEN/NOTIFY` after the enqueueing transaction commits; the deliverer also polls, so a
missed notification delays a row, never loses it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from wahttp.server.db import Database
from wahttp.server.webhooks.outbox import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class Listener:
    """One LISTENing connection that calls `on_notify` for each notification and when lost."""

    def __init__(self, db: Database, on_notify: Callable[[], None]) -> None:
        self._db = db
        self._on_notify = on_notify
        self.connection: Any = None  # the pool connection that LISTENs, once it does

    def _notified(self, *_args: object) -> None:
        self._on_notify()

    async def ensure(self) -> bool:
        """LISTEN on a pool connection of our own if not yet; False if that failed.

        A connection the server cut may not know it yet and fail the LISTEN: the caller
        then tries again soon (the claim that follows finds what a missed NOTIFY announced).
        """
        if self.connection is not None:
            if self.listening:
                return True
            await self.close()
        try:
            conn = await self._db.pool.acquire()
        except Exception as exc:
            log.debug("webhooks: cannot LISTEN (%s); polling", type(exc).__name__)
            return False
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            # Lost (server restart, connection cut): wake up, LISTEN again, then look for rows.
            conn.add_termination_listener(self._notified)
        except Exception as exc:
            log.debug("webhooks: cannot LISTEN (%s); polling", type(exc).__name__)
            with contextlib.suppress(Exception):
                await self._db.pool.release(conn)
            return False
        self.connection = conn
        return True

    @property
    def listening(self) -> bool:
        """Whether the connection LISTENs and is not known to be closed."""
        if self.connection is None:
            return False
        try:
            return not self.connection.is_closed()
        except asyncpg.InterfaceError:  # the pool took the broken connection back
            return False

    async def close(self) -> None:
        """Stop listening and give the connection back (idempotent, never raises)."""
        conn, self.connection = self.connection, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.remove_termination_listener(self._notified)
        with contextlib.suppress(Exception):
            await conn.remove_listener(NOTIFY_CHANNEL, self._notified)
        with contextlib.suppress(Exception):
            await self._db.pool.release(conn)
