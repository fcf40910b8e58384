"""The outbox repository: the only code that reads or writes `webhook_outbox`.

An event is stored as one row per target URL (schema: migrations/003_webhooks.sql), so each
target is retried and listed on its own; with no target, nothing is stored. The URL is fixed
when an event is enqueued; the secret is the one configured for that URL when the row is
claimed (so a rotated secret applies to retries), or the one at enqueue time once the URL has
none (the session was deleted or its webhook changed).

Workers claim due rows with `FOR UPDATE SKIP LOCKED` and a lease (`locked_until`, a
`claim_token`), so several processes can drain one outbox, a crashed worker's rows are taken
over when its lease expires, and an outcome is written only by the claim that still holds the
row: each row is marked delivered at most once. Every write that makes a row due sends a
NOTIFY on NOTIFY_CHANNEL (on commit), which wakes the deliverers of every process.

At rest: with a Sealer, an event's `data` is stored sealed in `payload` (AES-256-GCM,
wa/auth/sealing.py, bound to the event id and session; `seal_context`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from wahttp.server.db import Database, dumps
from wahttp.server.webhooks.contract import WebhookEvent
from wahttp.server.webhooks.outcome import Outcome
from wahttp.server.webhooks.targets import Target, TargetKind
from wahttp.server.webhooks.urls import check_url
from wahttp.wa.auth.sealing import SealContext, Sealer

NOTIFY_CHANNEL = "wahttp_webhooks"
DeliveryStatus = Literal["pending", "delivered", "dead"]


def seal_context(event_id: str, session_id: str | None) -> SealContext:
    """Where an event's sealed data lives: its session (\"\" for none) and its event id."""
    return SealContext(session_id or "", "webhook-event", event_id)


async def notify(conn: asyncpg.Connection) -> None:
    """Wake every deliverer listening (sent when `conn`'s transaction, if any, commits)."""
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


@dataclass(slots=True)
class Job:
    """A claimed outbox row."""

    id: int
    event_id: str
    type: str
    session_id: str | None
    occurred_at: datetime
    data: dict[str, Any]  # clear, or a sealed envelope
    target: str
    url: str
    secret: str | None
    attempts: int
    token: uuid.UUID
    recording: bool = False  # the outcome is being written


_INSERT = """
INSERT INTO webhook_outbox
    (event_id, event_type, session_id, occurred_at, payload, target, url, secret)
SELECT $1::uuid, $2::text, $3::text, $4::timestamptz, $5::jsonb, t.target, t.url, t.secret
FROM unnest($6::text[], $7::text[], $8::text[]) WITH ORDINALITY AS t(target, url, secret, n)
ORDER BY t.n
ON CONFLICT (event_id, url) DO NOTHING
RETURNING id
"""

# Claim up to $1 due rows for $2 seconds under claim token $3, none for the URLs in $4 (their
# slots are taken). The secret is the one currently
# configured for the row's URL if the session still has it there, else the stored one.
_CLAIM = """
WITH due AS (
    SELECT id FROM webhook_outbox
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (locked_until IS NULL OR locked_until <= now())
      AND url <> ALL($4::text[])
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_outbox AS o
SET locked_until = now() + make_interval(secs => $2::float8),
    claim_token = $3::uuid,
    attempts = o.attempts + 1
FROM due
WHERE o.id = due.id
RETURNING o.id, o.event_id, o.event_type, o.session_id, o.occurred_at, o.payload, o.target,
    o.url, o.attempts,
    COALESCE(
        CASE WHEN o.target = 'session' THEN
            (SELECT s.webhook_secret FROM sessions AS s
             WHERE s.id = o.session_id AND s.webhook_url = o.url)
        END,
        o.secret
    ) AS secret
"""

_RECORD = """
UPDATE webhook_outbox SET
    status = $3::text,
    last_status = $4::int,
    last_error = $5::text,
    next_attempt_at = CASE WHEN $3::text = 'pending'
        THEN now() + make_interval(secs => $6::float8) ELSE next_attempt_at END,
    delivered_at = CASE WHEN $3::text = 'delivered' THEN now() END,
    locked_until = NULL,
    claim_token = NULL
WHERE id = $1 AND claim_token = $2::uuid AND status = 'pending'
"""

_RELEASE = """
UPDATE webhook_outbox SET locked_until = NULL, claim_token = NULL,
    attempts = GREATEST(attempts - 1, 0), next_attempt_at = now()
WHERE id = $1 AND claim_token = $2 AND status = 'pending'
"""

# Seconds until the earliest pending row may be claimed: a free one's next attempt (not for
# the URLs in $1, whose slots are taken: a finished delivery wakes us), or the end of a lease
# (another worker's, or a dead one's).
_NEXT_DUE = """
SELECT EXTRACT(EPOCH FROM (LEAST(
    (SELECT next_attempt_at FROM webhook_outbox
     WHERE status = 'pending' AND (locked_until IS NULL OR locked_until <= now())
       AND url <> ALL($1::text[])
     ORDER BY next_attempt_at, id LIMIT 1),
    (SELECT min(locked_until) FROM webhook_outbox
     WHERE status = 'pending' AND locked_until > now())
) - now()))::float8
"""

_DELIVERY_COLUMNS = """
    id, event_id, event_type, session_id, target, url, status, attempts, last_status,
    last_error, created_at, delivered_at, next_attempt_at
"""

_REDELIVER = """
UPDATE webhook_outbox SET status = 'pending', attempts = 0,
    next_attempt_at = now(), locked_until = NULL, claim_token = NULL
WHERE id = $1 AND status = 'dead'
"""

_PRUNE = """
DELETE FROM webhook_outbox WHERE id = ANY(ARRAY(
    SELECT id FROM webhook_outbox
    WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1::float8)
    LIMIT $2))
  AND status <> 'pending'
"""


def _delivery(record: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": record["id"],
        "event_id": str(record["event_id"]),
        "type": record["event_type"],
        "session": record["session_id"],
        "target": record["target"],
        "url": record["url"],
        "status": record["status"],
        "attempts": record["attempts"],
        "last_status": record["last_status"],
        "last_error": record["last_error"],
        "created_at": record["created_at"],
        "delivered_at": record["delivered_at"],
        "next_attempt_at": record["next_attempt_at"] if record["status"] == "pending" else None,
    }


async def enqueue(
    conn_or_db: asyncpg.Connection | Database,
    event: WebhookEvent,
    targets: Sequence[Target],
    *,
    sealer: Sealer | None = None,
) -> list[int]:
    """Store one outbox row per target URL (duplicates dropped); returns the row ids.

    Given a connection, the rows are written on it, inside the caller's transaction if one is
    open, so an event can be enqueued atomically with other writes; the NOTIFY that wakes the
    deliverers is sent on commit. Given a Database, in a transaction of its own. Re-enqueueing
    an event id for a URL it already has is a no-op. With a sealer the data is stored sealed.
    """
    unique: dict[str, Target] = {}
    for target in targets:
        check_url(target.url)
        unique.setdefault(target.url, target)
    if not unique:
        return []
    payload: dict[str, Any] = event.data
    if sealer is not None:
        payload = sealer.seal(
            dumps(event.data).encode("utf-8"), seal_context(event.id, event.session_id)
        )
    if isinstance(conn_or_db, Database):
        async with conn_or_db.acquire() as conn, conn.transaction():
            return await _insert(conn, event, payload, list(unique.values()))
    return await _insert(conn_or_db, event, payload, list(unique.values()))


async def _insert(
    conn: asyncpg.Connection, event: WebhookEvent, payload: dict[str, Any], targets: list[Target]
) -> list[int]:
    records = await conn.fetch(
        _INSERT,
        uuid.UUID(event.id),
        event.type,
        event.session_id,
        event.occurred_at,
        payload,
        [t.kind for t in targets],
        [t.url for t in targets],
        [t.secret for t in targets],
    )
    await notify(conn)
    return [r["id"] for r in records]


class OutboxRepository:
    """The outbox's rows: enqueue, claim under a lease, record an outcome, list, prune."""

    def __init__(self, db: Database, sealer: Sealer | None = None) -> None:
        self._db = db
        self._sealer = sealer

    async def enqueue(
        self, conn: asyncpg.Connection, event: WebhookEvent, targets: Sequence[Target]
    ) -> list[int]:
        """`enqueue` on the caller's connection (and transaction), sealed with our sealer."""
        return await enqueue(conn, event, targets, sealer=self._sealer)

    async def claim(self, limit: int, lease: float, full: Sequence[str] = ()) -> list[Job]:
        """Claim up to `limit` due rows (FOR UPDATE SKIP LOCKED) for `lease` seconds, none of
        the URLs in `full`; each claim counts as an attempt. Oldest row first."""
        token = uuid.uuid4()
        async with self._db.acquire() as conn:
            records = await conn.fetch(_CLAIM, limit, lease, token, list(full))
        return [
            Job(
                id=r["id"],
                event_id=str(r["event_id"]),
                type=r["event_type"],
                session_id=r["session_id"],
                occurred_at=r["occurred_at"],
                data=r["payload"],
                target=r["target"],
                url=r["url"],
                secret=r["secret"],
                attempts=r["attempts"],
                token=token,
            )
            for r in sorted(records, key=lambda r: int(r["id"]))
        ]

    async def record(self, job: Job, outcome: Outcome) -> bool:
        """Write an attempt's outcome; False if the claim no longer holds the row (recorded
        already, or its lease ran out and another worker took it)."""
        async with self._db.acquire() as conn:
            status: str = await conn.execute(
                _RECORD,
                job.id,
                job.token,
                outcome.status,
                outcome.code,
                outcome.error,
                outcome.delay,
            )
        return status != "UPDATE 0"

    async def release(self, jobs: Sequence[Job]) -> None:
        """Give claims back at once, due now; the cut-short attempt does not count."""
        async with self._db.acquire() as conn:
            for job in jobs:
                await conn.execute(_RELEASE, job.id, job.token)
            await notify(conn)

    async def next_due(self, full: Sequence[str]) -> float | None:
        """Seconds until a row may be claimed (not one of the URLs in `full`); None: none."""
        async with self._db.acquire() as conn:
            seconds: float | None = await conn.fetchval(_NEXT_DUE, list(full))
        return seconds

    async def deliveries(
        self,
        session_id: str | None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
        before: int | None = None,
        *,
        target: TargetKind | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of a session (None: of no session), newest first; `before`: ids below;
        `target`: only the rows of that kind of target (a session key sees only "session")."""
        async with self._db.acquire() as conn:
            records = await conn.fetch(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_outbox"
                " WHERE session_id IS NOT DISTINCT FROM $1"
                " AND ($2::text IS NULL OR status = $2::text)"
                " AND ($3::bigint IS NULL OR id < $3::bigint)"
                " AND ($5::text IS NULL OR target = $5::text)"
                " ORDER BY id DESC LIMIT $4",
                session_id,
                status,
                before,
                max(0, limit),
                target,
            )
        return [_delivery(r) for r in records]

    async def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        async with self._db.acquire() as conn:
            record = await conn.fetchrow(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_outbox WHERE id = $1", delivery_id
            )
        return None if record is None else _delivery(record)

    async def redeliver(self, delivery_id: int) -> bool:
        """Queue a dead row again, with a fresh count of attempts; False if it is not dead."""
        async with self._db.acquire() as conn:
            status: str = await conn.execute(_REDELIVER, delivery_id)
            if status == "UPDATE 0":
                return False
            await notify(conn)
        return True

    async def prune(self, older_than: float, batch: int = 1000) -> int:
        """Delete delivered and dead rows created more than `older_than` seconds ago, `batch`
        rows a statement (by the `webhook_outbox_finished` index), so no lock is held long."""
        total = 0
        while True:
            async with self._db.acquire() as conn:
                status: str = await conn.execute(_PRUNE, older_than, batch)
            deleted = int(status.rsplit(maxsplit=1)[-1])
            total += deleted
            if deleted < batch:
                return total
