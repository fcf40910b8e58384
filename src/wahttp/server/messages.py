"""Message status records: what we sent (pending -> sent -> delivered -> read) and received.

Rows hold ids, chats, statuses and timestamps, and for a message we sent its encoded Message
(`payload`), kept to answer retry receipts after a restart. With a Sealer (the service's
encryption key ring) the payload is stored as a sealed envelope (wa/auth/sealing.py, the JSON
text of it in the bytea column) bound to (session, "messages.payload", message id): a payload
copied to another row or session does not open. Clear payloads (written without a key, or
before one was set) are read as they are; `reseal_payloads` (behind `wahttp auth rotate-key`)
seals them under the current key. Old rows go by `server/retention.py`.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from wahttp.server.db import Database
from wahttp.wa.auth.sealing import SealContext, Sealer, SealError, is_sealed, open_sealed

# A status only moves forward; a late "delivered" must not undo "read".
RANK = {"pending": 0, "failed": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}
# The seal context's category of a sent payload: not a possible auth key category (those have
# no '.'), so a payload's seal never opens as an auth value, nor the other way round.
PAYLOAD_CATEGORY = "messages.payload"
_SEALED_PREFIX = b'{"' + b"wahttp:sealed"  # an encoded Message never starts with '{' (0x7b)
RESEAL_BATCH = 500


def payload_context(session_id: str, message_id: str) -> SealContext:
    return SealContext(session_id, PAYLOAD_CATEGORY, message_id)


def seal_payload(
    sealer: Sealer | None, session_id: str, message_id: str, payload: bytes | None
) -> bytes | None:
    """What to store for a sent payload: itself without a key, else its sealed envelope."""
    if payload is None or sealer is None:
        return payload
    envelope = sealer.seal(payload, payload_context(session_id, message_id))
    return json.dumps(envelope, separators=(",", ":")).encode("ascii")


def _envelope(stored: bytes) -> dict[str, object] | None:
    if not stored.startswith(_SEALED_PREFIX):
        return None
    try:
        value = json.loads(stored)
    except ValueError:
        return None
    return value if is_sealed(value) else None


def open_payload(sealer: Sealer | None, session_id: str, message_id: str, stored: bytes) -> bytes:
    """A stored payload in clear: clear ones as they are, sealed ones opened (SealError if
    they cannot be: no key, an unknown key id, or a wrong, altered or moved value)."""
    envelope = _envelope(stored)
    if envelope is None:
        return stored
    return open_sealed(sealer, envelope, payload_context(session_id, message_id))


@dataclass(slots=True)
class PayloadResealCounts:
    """What `reseal_payloads` did: payloads seen, and re-sealed by what they were in."""

    values: int = 0
    resealed: Counter[str] = field(default_factory=Counter)  # "clear" or the old key id

    @property
    def total_resealed(self) -> int:
        return sum(self.resealed.values())


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
    def __init__(self, db: Database, sealer: Sealer | None = None) -> None:
        self._db = db
        self._sealer = sealer

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
                seal_payload(self._sealer, session_id, message_id, payload),
            )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._db.acquire() as conn, conn.transaction():
            yield conn

    async def record_incoming(
        self,
        session_id: str,
        message_id: str,
        chat: str,
        conn: asyncpg.Connection,
        *,
        from_me: bool = False,
        push_name: str | None = None,
    ) -> bool:
        """Record a received message; False when it was recorded before (a redelivery).

        `from_me`: a message our own other device (the phone) sent, of which we got a copy:
        recorded as sent by us, so it never counts as unread. `push_name`: the sender's (its
        `notify`), the chat's name when the address book has none (server/chats.py)."""
        inserted = await conn.fetchval(
            "INSERT INTO messages (session_id, id, chat, from_me, status, push_name) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
            session_id,
            message_id,
            chat,
            from_me,
            "sent" if from_me else "received",
            None if from_me else push_name,
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
                seal_payload(self._sealer, session_id, message_id, payload),
            )

    async def load_sent(self, session_id: str, message_id: str) -> tuple[str, bytes] | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT chat, payload FROM messages WHERE session_id = $1 AND id = $2 "
                "AND from_me AND payload IS NOT NULL",
                session_id,
                message_id,
            )
        if row is None:
            return None
        payload = open_payload(self._sealer, session_id, message_id, bytes(row["payload"]))
        return row["chat"], payload

    async def reseal_payloads(self, session_id: str) -> PayloadResealCounts:
        """Seal this session's sent payloads under the current key, a batch at a time.

        Clear payloads and those under older keys are re-sealed, those under the current key
        are opened (checked) and left alone: a second run changes nothing. Each row is
        replaced only if it still holds what was read (a concurrent write wins), and no lock
        is held between batches, so a running service is not held up.
        """
        sealer = self._sealer
        if sealer is None:
            raise SealError("re-sealing needs an encryption key")
        counts = PayloadResealCounts()
        after = ""
        while True:
            async with self._db.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT id, payload FROM messages WHERE session_id = $1 AND id > $2"
                    " AND payload IS NOT NULL ORDER BY id LIMIT $3",
                    session_id,
                    after,
                    RESEAL_BATCH,
                )
                updates: list[tuple[str, str, bytes, bytes]] = []
                for row in rows:
                    stored = bytes(row["payload"])
                    clear = open_payload(sealer, session_id, row["id"], stored)
                    counts.values += 1
                    envelope = _envelope(stored)
                    if envelope is not None and sealer.is_current(envelope):
                        continue
                    counts.resealed["clear" if envelope is None else str(envelope["kid"])] += 1
                    new = seal_payload(sealer, session_id, row["id"], clear)
                    assert new is not None
                    updates.append((session_id, row["id"], stored, new))
                if updates:
                    await conn.executemany(
                        "UPDATE messages SET payload = $4 WHERE session_id = $1 AND id = $2"
                        " AND payload = $3",
                        updates,
                    )
            if len(rows) < RESEAL_BATCH:
                return counts
            after = rows[-1]["id"]

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
