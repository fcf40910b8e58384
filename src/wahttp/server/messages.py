"""Message status records: what we sent (pending -> sent -> delivered -> read) and received.

Only ids, chats and timestamps are stored; message bodies stay out of the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from wahttp.server.db import Database

# A status only moves forward; a late "delivered" must not undo "read".
RANK = {"pending": 0, "failed": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: str
    chat: str
    from_me: bool
    status: str
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime
    updated_at: datetime
    error_code: int | None = None
    error_reason: str | None = None


class MessageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record_outgoing(
        self, session_id: str, message_id: str, chat: str, payload: bytes | None = None
    ) -> None:
        """A message about to be sent (pending), with its sent copy for retry receipts."""
        async with self._db.acquire() as conn:
            await conn.execute(
                "INSERT INTO messages (session_id, id, chat, from_me, status, payload) "
                "VALUES ($1, $2, $3, true, 'pending', $4) ON CONFLICT DO NOTHING",
                session_id,
                message_id,
                chat,
                payload,
            )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._db.acquire() as conn, conn.transaction():
            yield conn

    async def record_incoming(
        self, session_id: str, message_id: str, chat: str, conn: asyncpg.Connection
    ) -> bool:
        """Record a received message; False when it was recorded before (a redelivery)."""
        inserted = await conn.fetchval(
            "INSERT INTO messages (session_id, id, chat, from_me, status) "
            "VALUES ($1, $2, $3, false, 'received') ON CONFLICT DO NOTHING RETURNING true",
            session_id,
            message_id,
            chat,
        )
        return bool(inserted)

    async def set_status(
        self,
        session_id: str,
        message_ids: list[str],
        status: str,
        conn: asyncpg.Connection | None = None,
    ) -> list[tuple[str, str]]:
        """Advance these messages to `status` (never backwards); returns (id, previous status)
        of those that moved. With `conn`, on that connection (and its transaction)."""
        # A later status implies the earlier ones (a receipt can overtake the server's ack).
        rank = RANK.get(status, 0)
        columns = [c for c, r in (("sent_at", 1), ("delivered_at", 2), ("read_at", 3)) if rank >= r]
        stamp = "".join(f", {c} = COALESCE(m.{c}, now())" for c in columns)
        lower = [s for s, r in RANK.items() if r < RANK.get(status, 0)]
        if status == "failed":
            lower = ["pending"]
        query = (
            "WITH old AS (SELECT id, status FROM messages WHERE session_id = $1 "
            "AND id = ANY($2::text[]) AND from_me AND status = ANY($4::text[]) FOR UPDATE) "
            f"UPDATE messages m SET status = $3, updated_at = now(){stamp} "  # fixed column map
            "FROM old WHERE m.session_id = $1 AND m.id = old.id RETURNING m.id, old.status"
        )
        if conn is not None:
            rows = await conn.fetch(query, session_id, message_ids, status, lower)
        else:
            async with self._db.acquire() as own:
                rows = await own.fetch(query, session_id, message_ids, status, lower)
        return [(r["id"], r["status"]) for r in rows]

    async def record_error(
        self,
        session_id: str,
        message_id: str,
        code: int | None,
        reason: str,
        conn: asyncpg.Connection,
    ) -> None:
        """Why a sent message failed (the server's ack error), beside its `failed` status."""
        await conn.execute(
            "UPDATE messages SET error_code = $3, error_reason = $4 "
            "WHERE session_id = $1 AND id = $2 AND from_me",
            session_id,
            message_id,
            code,
            reason,
        )

    async def save_sent(self, session_id: str, message_id: str, chat: str, payload: bytes) -> None:
        async with self._db.acquire() as conn:
            await conn.execute(
                "INSERT INTO messages (session_id, id, chat, from_me, status, payload) "
                "VALUES ($1, $2, $3, true, 'pending', $4) "
                "ON CONFLICT (session_id, id) DO UPDATE SET payload = EXCLUDED.payload",
                session_id,
                message_id,
                chat,
                payload,
            )

    async def load_sent(self, session_id: str, message_id: str) -> tuple[str, bytes] | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT chat, payload FROM messages WHERE session_id = $1 AND id = $2 "
                "AND from_me AND payload IS NOT NULL",
                session_id,
                message_id,
            )
        return (row["chat"], bytes(row["payload"])) if row else None

    async def mark_read_incoming(self, session_id: str, message_id: str) -> None:
        async with self._db.acquire() as conn:
            await conn.execute(
                "UPDATE messages SET read_at = COALESCE(read_at, now()), updated_at = now() "
                "WHERE session_id = $1 AND id = $2 AND NOT from_me",
                session_id,
                message_id,
            )

    async def get(self, session_id: str, message_id: str) -> MessageRow | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT id, chat, from_me, status, sent_at, delivered_at, read_at, created_at, "
                "updated_at, error_code, error_reason FROM messages "
                "WHERE session_id = $1 AND id = $2",
                session_id,
                message_id,
            )
        return MessageRow(**dict(row)) if row else None


class SessionSentStore:
    """One session's view of the sent-message store (the client's SentStore)."""

    def __init__(self, repo: MessageRepository, session_id: str) -> None:
        self._repo = repo
        self._session_id = session_id

    async def save_sent(self, message_id: str, chat: str, payload: bytes) -> None:
        await self._repo.save_sent(self._session_id, message_id, chat, payload)

    async def load_sent(self, message_id: str) -> tuple[str, bytes] | None:
        return await self._repo.load_sent(self._session_id, message_id)
