"""Webhooks: signed POSTs of inbound events, delivered at least once through a PostgreSQL outbox.

Targets. A session may have its own webhook (`sessions.webhook_url`, set at create or with
`PUT /sessions/{id}/webhook`), and the service may have a global one (`WAHTTP_WEBHOOK_URL`) that
gets every session's events. An event is stored as one `webhook_outbox` row per target URL
(schema: migrations/003_webhooks.sql), so each target is retried and listed on its own. With no
target, nothing is stored.

Events and the body. Every POST has the body (compact JSON, UTF-8)::

    {"id": "<event id, a UUID>",
     "type": "message" | "message.ack" | "session.status" | "call" | "contact.picture",
     "session": "<session id>" | null, "timestamp": <when it happened, Unix time in ms>,
     "data": {...}}

The event id is the same for every target and every retry of one event: receivers deduplicate
on it. `data` is what server/events.py builds for each type (see `MessageData`, `AckData`,
`StatusData`):

- `message` (inbound): `id`, `chat`, `sender`, `senderAlt`, `fromMe`, `timestamp`
  (WhatsApp's, Unix seconds), `pushName`, `contactName` (the name the account's address book
  gives the chat, from app-state sync; null when unknown), `type` (the raw message type),
  `text` (null when the message has none);
- `message.ack`: `id`, `chat`, `status` (`sent`, `delivered`, `read`, ...), `device`;
- `session.status` (every state change): `state`, `since` (ISO 8601), `jid`,
  `lastDisconnect` (`{"code", "reason", "at"}` or null), `at`;
- `call` (an incoming call offer): `id` (the call id), `from` (the caller), `callerPn`,
  `isVideo`, `isGroup`, `groupJid`, `timestamp` (Unix seconds), `offline` (delivered from
  the offline queue), `rejected` (declined by WAHTTP_REJECT_CALLS);
- `contact.picture` (a profile picture changed): `jid` (whose: a contact, a group or our own
  account), `author`, `pictureId` (null when removed), `removed`, `timestamp`.

Headers::

    Content-Type: application/json
    X-Wahttp-Event: <type>
    X-Wahttp-Event-Id: <event id>
    X-Wahttp-Delivery: <outbox row id>
    X-Wahttp-Attempt: <1, 2, ...>
    X-Wahttp-Timestamp: <Unix seconds when this attempt was signed>
    X-Wahttp-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Wahttp-Timestamp>." + body)>

The signed message is the decimal timestamp header, one ".", then the raw body bytes; the key
is the secret's UTF-8 bytes. Each attempt is signed afresh with the time it is sent, so a
receiver that rejects timestamps older than a few minutes (`verify_signature`'s `tolerance`)
is not open to replays.

Secrets. Every session has its own random secret (a column default, also filled in on first
use for rows that have none); `GET /sessions/{id}/webhook` shows it and `PUT` may set one. The
global webhook is signed with `WAHTTP_WEBHOOK_SECRET`, which is required when
`WAHTTP_WEBHOOK_URL` is set: nothing is ever sent unsigned. The URL is fixed when an event is
enqueued; the secret is the one configured for that URL when the attempt is made (so a
rotated secret applies to retries), or the one at enqueue time once the URL has none (the
session was deleted or its webhook changed).

Where deliveries may go (server/outbound.py, server/webhook_policy.py). A session's URL was
set through the API, so by default it may not reach loopback, private, link-local or reserved
addresses (WAHTTP_WEBHOOK_ALLOW_PRIVATE opts in); the global URL is the operator's and may.
WAHTTP_WEBHOOK_ALLOW / WAHTTP_WEBHOOK_DENY apply to both. The routes check a URL when it is set,
and every connection a delivery opens is checked again against the addresses its host
resolves to then, and goes to exactly an address that passed (so a changed DNS answer, or a
URL stored before the policy, cannot reach a refused address). A refused delivery is dead at
once with `last_error` "address not allowed: ...", without any connection attempt: it tells
nothing about the ports behind it. Redirects are never followed.

Slots. At most `concurrency` deliveries run at once in a process, and at most
`target_concurrency` of them for one URL: rows of a URL whose slots are taken are not claimed,
so a slow or dead endpoint delays only its own events.

At rest. With a Sealer (WAHTTP_ENCRYPTION_KEY), an event's `data` is stored sealed in `payload`
(AES-256-GCM, wa/auth/sealing.py, bound to the event id and session), opened when it is
delivered; clear rows from before are delivered as they are. A row that cannot be opened (its
key is gone) is dead with the reason in `last_error`.

Delivery. A 2xx answer is delivered; 410 Gone is dead at once (the receiver asks us to stop);
any other answer, a timeout or a connection error is retried with exponential backoff and
jitter (`Retry-After` of a 429 or 503 is honoured up to the maximum delay), until
`max_attempts` attempts, after which the row is dead (`redeliver` queues it again). Workers
claim due rows with `FOR UPDATE SKIP LOCKED` and a lease (`locked_until`), so several
processes can drain one outbox and a crashed worker's rows are taken over when its lease
expires. Events wake the deliverer at once (in process, and across processes by
`LISTEN/NOTIFY` after the enqueueing transaction commits); it also polls. Order is not
guaranteed: use `timestamp`. A receiver may see an event twice only when an attempt failed
(e.g. timed out) after the receiver had processed it; the outbox marks each row delivered at
most once.

Logs name the delivery id, event id, type, status code and attempt; never bodies, secrets or
URLs (a URL may carry a token). httpx itself logs each request line, URL included, at INFO on
the `httpx` logger: keep that logger at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict, cast, get_args

import asyncpg
import httpx

from wahttp import __version__
from wahttp.server.db import Database
from wahttp.server.outbound import (
    AddressNotAllowed,
    InvalidOutboundUrl,
    OutboundGuard,
    OutboundPolicy,
    Resolver,
    guarded_client,
    parse_url,
)
from wahttp.wa.auth.sealing import SealContext, Sealer, SealError, is_sealed, open_sealed

log = logging.getLogger(__name__)

EventType = Literal["message", "message.ack", "session.status", "call", "contact.picture"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
DeliveryStatus = Literal["pending", "delivered", "dead"]
TargetKind = Literal["session", "global"]

NOTIFY_CHANNEL = "wahttp_webhooks"
SIGNATURE_PREFIX = "sha256="
MIN_SECRET_LENGTH = 16
MAX_URL_LENGTH = 2048
_ERROR_LIMIT = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RECORD_TRIES = 3
# Delivered is routine, a retry worth noting, a dead letter a problem.
_LOG_LEVELS = {"delivered": logging.DEBUG, "pending": logging.INFO, "dead": logging.WARNING}


class InvalidWebhookUrl(InvalidOutboundUrl):
    """A webhook URL that is not an absolute http(s) URL with a host."""


class MessageData(TypedDict):
    """`data` of a `message` event (built by server/events.py)."""

    id: str
    chat: str
    sender: str
    senderAlt: str | None
    fromMe: bool
    timestamp: int
    pushName: str | None
    contactName: str | None
    type: str
    text: str | None


class AckData(TypedDict):
    """`data` of a `message.ack` event."""

    id: str
    chat: str
    status: str
    device: str | None


CallData = TypedDict(
    "CallData",
    {
        "id": str,
        "from": str,
        "callerPn": str | None,
        "isVideo": bool,
        "isGroup": bool,
        "groupJid": str | None,
        "timestamp": int,
        "offline": bool,
        "rejected": bool,
    },
)
"""`data` of a `call` event (`from` is a Python keyword: the functional form)."""


class StatusData(TypedDict):
    """`data` of a `session.status` event."""

    state: str
    since: str
    jid: str | None
    lastDisconnect: dict[str, Any] | None
    at: str


def check_url(url: str) -> str:
    """The URL if it is an absolute http(s) URL with a valid host; InvalidWebhookUrl if not.

    Syntax only (outbound.parse_url): where it may go is `Webhooks.check_target`'s question.
    """
    try:
        parse_url(url, max_length=MAX_URL_LENGTH)
    except InvalidOutboundUrl as exc:
        raise InvalidWebhookUrl(str(exc).replace("the URL", "the webhook URL", 1)) from None
    return url


def check_secret(secret: str) -> str:
    """A signing secret of MIN_SECRET_LENGTH+ characters without control characters."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"the webhook secret must have at least {MIN_SECRET_LENGTH} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in secret):
        raise ValueError("the webhook secret must not contain control characters")
    return secret


def _seal_context(event_id: str, session_id: str | None) -> SealContext:
    """Where an event's sealed data lives: its session (\"\" for none) and its event id."""
    return SealContext(session_id or "", "webhook-event", event_id)


def new_secret() -> str:
    """A random signing secret: 64 hex digits (256 bits)."""
    return secrets.token_hex(32)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_millis(moment: datetime) -> int:
    """Unix time in whole milliseconds (exact integer arithmetic, floor)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def encode_body(
    event_id: str,
    type: str,
    session_id: str | None,
    occurred_at: datetime,
    data: Mapping[str, Any],
) -> bytes:
    """The POST body (see the module docstring)."""
    body = {
        "id": event_id,
        "type": type,
        "session": session_id,
        "timestamp": to_millis(occurred_at),
        "data": data,
    }
    return _json(body).encode("utf-8")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Wahttp-Signature value: `sha256=` + hex HMAC-SHA256(secret, f"{timestamp}." + body)."""
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str,
    timestamp: int | str,
    body: bytes,
    header: str,
    *,
    tolerance: float | None = 300.0,
    now: float | None = None,
) -> bool:
    """Check a webhook's signature (timing-safe) and, unless tolerance is None, its age.

    `timestamp` is the X-Wahttp-Timestamp header, `body` the raw request body, `header` the
    X-Wahttp-Signature header. A receiver can copy this function as it is.
    """
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - ts) > tolerance:
            return False
    expected = sign(secret, ts, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event; `id` and `occurred_at` default to a new UUID and now."""

    type: EventType
    session_id: str | None
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {self.type!r}")
        uuid.UUID(self.id)  # ValueError if not a UUID

    @property
    def timestamp(self) -> int:
        """The body's `timestamp`: Unix time in milliseconds."""
        return to_millis(self.occurred_at)

    def body(self) -> bytes:
        return encode_body(self.id, self.type, self.session_id, self.occurred_at, self.data)


@dataclass(frozen=True, slots=True)
class Target:
    """Where an event goes and the secret that signs it."""

    kind: TargetKind
    url: str
    secret: str

    def __repr__(self) -> str:  # never show the secret (or the URL, which may hold a token)
        return f"Target(kind={self.kind!r})"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """A session's webhook: its URL (None: none) and signing secret."""

    url: str | None
    secret: str

    def __repr__(self) -> str:
        return f"WebhookConfig(url={'set' if self.url else None})"


_INSERT = """
INSERT INTO webhook_outbox
    (event_id, event_type, session_id, occurred_at, payload, target, url, secret)
SELECT $1::uuid, $2::text, $3::text, $4::timestamptz, $5::jsonb, t.target, t.url, t.secret
FROM unnest($6::text[], $7::text[], $8::text[]) WITH ORDINALITY AS t(target, url, secret, n)
ORDER BY t.n
ON CONFLICT (event_id, url) DO NOTHING
RETURNING id
"""


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
            _json(event.data).encode("utf-8"), _seal_context(event.id, event.session_id)
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
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return [r["id"] for r in records]


@dataclass(slots=True)
class _Job:
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


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: DeliveryStatus
    code: int | None
    error: str | None
    delay: float = 0.0


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


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    return None


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:_ERROR_LIMIT]


HttpClientFactory = Callable[[], httpx.AsyncClient]
DEFAULT_CONCURRENCY = 64
DEFAULT_TARGET_CONCURRENCY = 8  # as many as all deliveries had before: no URL is slower


_PRUNE = """
DELETE FROM webhook_outbox WHERE id = ANY(ARRAY(
    SELECT id FROM webhook_outbox
    WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1::float8)
    LIMIT $2))
  AND status <> 'pending'
"""


class Webhooks:
    """Enqueues events and runs a deliverer that drains the outbox (see the module docstring).

    `start()` runs the deliverer in the background; `stop()` lets in-flight deliveries finish
    within a deadline and gives the rest back. Several instances (in one or many processes)
    may drain one outbox. `lease` is how long a claim lasts before another worker may take
    the row over (default: timeout + 30 s); `poll_interval` bounds how long the deliverer
    sleeps without a wake-up; `jitter` spreads each backoff delay uniformly over
    [1 - jitter, 1 + jitter] times its nominal value.

    `policy` says where session webhooks (set through the API) may go, and the global URL
    goes where `policy.operator()` allows (internal addresses too, the lists still apply);
    `resolver` replaces getaddrinfo (tests). `http_client_factory` replaces the guarded
    clients with one of the caller's, which then checks nothing. `sealer` seals stored data.
    """

    def __init__(
        self,
        db: Database,
        *,
        global_url: str | None = None,
        global_secret: str | None = None,
        max_attempts: int = 10,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        timeout: float = 10.0,
        concurrency: int = DEFAULT_CONCURRENCY,
        target_concurrency: int = DEFAULT_TARGET_CONCURRENCY,
        http_client_factory: HttpClientFactory | None = None,
        lease: float | None = None,
        poll_interval: float = 5.0,
        jitter: float = 0.5,
        listen: bool = True,
        policy: OutboundPolicy | None = None,
        resolver: Resolver | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        if global_url is not None:
            check_url(global_url)
            if not global_secret:
                raise ValueError("a global webhook URL needs a secret (WAHTTP_WEBHOOK_SECRET)")
        if global_secret is not None and len(global_secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the webhook secret must have at least {MIN_SECRET_LENGTH} characters"
            )
        if max_attempts < 1 or concurrency < 1 or target_concurrency < 1:
            raise ValueError("max_attempts and the concurrencies must be at least 1")
        if min(base_delay, max_delay, timeout, poll_interval) <= 0 or not 0 <= jitter < 1:
            raise ValueError("delays, timeout and poll_interval must be > 0, jitter in [0, 1)")
        self._db = db
        self.global_url = global_url
        self._global_secret = global_secret
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.concurrency = concurrency
        self.target_concurrency = min(target_concurrency, concurrency)
        self.policy = policy if policy is not None else OutboundPolicy()
        self._guards: dict[str, OutboundGuard] = {
            "session": OutboundGuard(self.policy, resolver=resolver),
            "global": OutboundGuard(self.policy.operator(), resolver=resolver),
        }
        self._sealer = sealer
        self.lease = lease if lease is not None else timeout + 30.0
        if self.lease <= timeout:
            raise ValueError("the lease must be longer than the timeout")
        self.poll_interval = poll_interval
        self.jitter = jitter
        self._listen = listen
        self._client_factory = http_client_factory
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[asyncio.Task[None], _Job] = {}
        self._recording: set[asyncio.Future[None]] = set()
        self._stopping = False
        self._listener: Any = None  # the pool connection that LISTENs

    def __repr__(self) -> str:
        return f"Webhooks(global={'set' if self.global_url else None}, running={self.running})"

    # -- configuration -------------------------------------------------------------------------
    def _default_client(self, kind: str) -> httpx.AsyncClient:
        """A client whose every connection passes the guard of this kind of target."""
        return guarded_client(
            self._guards[kind],
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.concurrency),
            headers={"User-Agent": f"wahttp-webhooks/{__version__}"},
        )

    async def check_target(self, url: str, *, operator: bool = False) -> None:
        """Whether a session webhook URL (`operator`: the operator's own) may be used: the
        syntax, then the policy on its host and every address it resolves to now.

        InvalidWebhookUrl for a bad URL or a host that does not resolve; AddressNotAllowed
        (a WebhookPolicyError) for one the policy refuses.
        """
        check_url(url)
        try:
            await self._guards["global" if operator else "session"].check(url)
        except AddressNotAllowed:
            raise
        except InvalidOutboundUrl as exc:
            raise InvalidWebhookUrl(str(exc)) from None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def backoff(self, attempt: int) -> float:
        """Seconds before the retry that follows attempt `attempt` (1-based), with jitter."""
        nominal = min(self.max_delay, self.base_delay * 2.0 ** min(max(attempt - 1, 0), 32))
        spread = random.uniform(1.0 - self.jitter, 1.0 + self.jitter)  # jitter, not crypto
        return min(self.max_delay, nominal * spread)

    # -- sessions' webhooks --------------------------------------------------------------------
    async def get_webhook(self, session_id: str) -> WebhookConfig | None:
        """The session's webhook URL and secret (generated if missing); None: no such session."""
        async with self._db.acquire() as conn:
            record = await conn.fetchrow(
                "SELECT webhook_url, webhook_secret FROM sessions WHERE id = $1", session_id
            )
            if record is None:
                return None
            secret = record["webhook_secret"] or await self._fill_secret(conn, session_id)
        if secret is None:
            return None  # deleted meanwhile
        return WebhookConfig(record["webhook_url"], secret)

    async def set_webhook(
        self, session_id: str, url: str | None, secret: str | None = None
    ) -> WebhookConfig | None:
        """Set (or with None, remove) the session's webhook URL, and its secret if given.

        Without a secret the session keeps its own (one is generated if it has none). Events
        already queued keep the URL they were queued for. None: no such session.
        """
        if url is not None:
            check_url(url)
        if secret is not None:
            check_secret(secret)
        async with self._db.acquire() as conn:
            record = await conn.fetchrow(
                "UPDATE sessions SET webhook_url = $2,"
                " webhook_secret = COALESCE($3, webhook_secret, $4), updated_at = now()"
                " WHERE id = $1 RETURNING webhook_url, webhook_secret",
                session_id,
                url,
                secret,
                new_secret(),
            )
        return (
            None
            if record is None
            else WebhookConfig(record["webhook_url"], record["webhook_secret"])
        )

    @staticmethod
    async def _fill_secret(conn: asyncpg.Connection, session_id: str) -> str | None:
        secret: str | None = await conn.fetchval(
            "UPDATE sessions SET webhook_secret = COALESCE(webhook_secret, $2) WHERE id = $1"
            " RETURNING webhook_secret",
            session_id,
            new_secret(),
        )
        return secret

    async def targets(self, conn: asyncpg.Connection, session_id: str | None) -> list[Target]:
        """Where an event of this session goes now: its own webhook, then the global one."""
        out: list[Target] = []
        if session_id is not None:
            record = await conn.fetchrow(
                "SELECT webhook_url, webhook_secret FROM sessions WHERE id = $1", session_id
            )
            url = None if record is None else record["webhook_url"]
            if url:
                try:
                    check_url(url)
                except InvalidWebhookUrl:
                    log.warning("[%s] ignoring the session's invalid webhook URL", session_id)
                else:
                    secret = record["webhook_secret"] or await self._fill_secret(conn, session_id)
                    if secret:
                        out.append(Target("session", url, secret))
        if self.global_url is not None and self._global_secret is not None:
            out.append(Target("global", self.global_url, self._global_secret))
        return out

    # -- enqueueing ----------------------------------------------------------------------------
    async def emit(
        self,
        session_id: str | None,
        type: str,
        data: Mapping[str, Any],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Queue an event for every current target (see `publish`; this drops the id)."""
        await self.publish(session_id, type, data, conn=conn)

    async def publish(
        self,
        session_id: str | None,
        type: str,
        data: Mapping[str, Any],
        *,
        conn: asyncpg.Connection | None = None,
        event_id: str | None = None,
    ) -> str | None:
        """Queue an event for every current target; returns its id, or None when it has none.

        `type` is one of EVENT_TYPES (ValueError if not). With `conn`, the lookup and the rows
        use that connection and its open transaction: they commit or roll back with the
        caller's writes.
        """
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {type!r}")
        kind = cast(EventType, type)
        event = WebhookEvent(kind, session_id, dict(data))
        if event_id is not None:
            event = WebhookEvent(kind, session_id, dict(data), id=event_id)
        if conn is not None:
            targets = await self.targets(conn, session_id)
            stored = await enqueue(conn, event, targets, sealer=self._sealer)
        else:
            async with self._db.acquire() as own:
                targets = await self.targets(own, session_id)
                if not targets:
                    return None  # no webhook: one query, no transaction
                async with own.transaction():
                    stored = await enqueue(own, event, targets, sealer=self._sealer)
        if not stored:
            return None
        self._wake.set()
        log.debug("queued %s event %s for %d targets", type, event.id, len(stored))
        return event.id

    def wake(self) -> None:
        """Look for due rows now (e.g. after enqueueing on a connection of one's own)."""
        self._wake.set()

    # -- the outbox ----------------------------------------------------------------------------
    async def deliveries(
        self,
        session_id: str | None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
        before: int | None = None,
        *,
        target: TargetKind | None = None,
    ) -> list[dict[str, Any]]:
        """Outbox rows of a session (None: of no session), newest first; `before`: ids below;
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
            status: str = await conn.execute(
                "UPDATE webhook_outbox SET status = 'pending', attempts = 0,"
                " next_attempt_at = now(), locked_until = NULL, claim_token = NULL"
                " WHERE id = $1 AND status = 'dead'",
                delivery_id,
            )
            if status == "UPDATE 0":
                return False
            await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        self._wake.set()
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

    # -- the deliverer -------------------------------------------------------------------------
    def start(self) -> None:
        """Run the deliverer in the background (idempotent)."""
        if self.running:
            return
        self._stopping = False
        if not self._clients:
            if self._client_factory is not None:
                shared = self._client_factory()
                self._clients = {"session": shared, "global": shared}
            else:
                self._clients = {kind: self._default_client(kind) for kind in self._guards}
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; let in-flight deliveries finish within `timeout`, release the rest.

        A delivery cut short is given back at once (its attempt not counted), so another
        worker, or this service after a restart, sends it again without waiting for a lease.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            _done, pending = await asyncio.wait([task], timeout=timeout)
            if pending:  # stuck on the database: give up on it
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._inflight:
            remaining = max(0.0, deadline - loop.time())
            _done, pending = await asyncio.wait(list(self._inflight), timeout=remaining)
            # Those writing their outcome already finish that (shielded); the others stop.
            unfinished = [self._inflight[t] for t in pending if not self._inflight[t].recording]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if unfinished:
                log.warning("webhooks: %d deliveries cut short at shutdown", len(unfinished))
                await self._release(unfinished)
        if self._recording:
            await asyncio.wait(list(self._recording), timeout=5.0)
        await self._unlisten()
        clients, self._clients = self._clients, {}
        for client in {id(c): c for c in clients.values()}.values():
            await client.aclose()

    async def _release(self, jobs: list[_Job]) -> None:
        """Give claims back at once; the cut-short attempt does not count."""
        with contextlib.suppress(Exception):
            async with self._db.acquire() as conn:
                for job in jobs:
                    await conn.execute(
                        "UPDATE webhook_outbox SET locked_until = NULL, claim_token = NULL,"
                        " attempts = GREATEST(attempts - 1, 0), next_attempt_at = now()"
                        " WHERE id = $1 AND claim_token = $2 AND status = 'pending'",
                        job.id,
                        job.token,
                    )
                await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)

    async def _run(self) -> None:
        failures = 0
        deaf = 0  # LISTEN attempts failed in a row
        while not self._stopping:
            self._wake.clear()
            try:
                deaf = 0 if await self._ensure_listening() else deaf + 1
                free = self.concurrency - len(self._inflight)
                if free <= 0:
                    delay = self.poll_interval  # a finished delivery wakes us
                else:
                    full, limit = self._slots(free)
                    claimed = await self._claim(limit, full)
                    for job in claimed:
                        self._spawn(job)
                    if len(claimed) == free:
                        # All slots filled: more may be due, look again when one frees up.
                        delay = self.poll_interval
                    elif len(claimed) == limit:
                        delay = 0.0  # a claim kept small for the URLs' slots: more may be due
                    else:
                        delay = await self._next_due(self._slots(free)[0])
                failures = 0
                if deaf:
                    # No NOTIFY can wake us: try LISTEN again soon rather than poll slowly.
                    delay = min(delay, self._backoff(deaf))
            except Exception as exc:
                failures += 1
                delay = self._backoff(failures)
                log.warning(
                    "webhooks: outbox unavailable (%s); again in %.1fs", type(exc).__name__, delay
                )
                log.debug("webhooks: outbox error", exc_info=True)
                # The database failed under us: the LISTEN connection may be as dead without
                # knowing it yet, so listen anew (then claim) rather than miss notifications.
                await self._unlisten()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _backoff(self, failures: int) -> float:
        return min(self.poll_interval, 0.1 * 2.0 ** min(failures, 8))

    def _slots(self, free: int) -> tuple[list[str], int]:
        """The URLs whose slots are all taken, and how many rows one claim may take so that
        no URL gets more than its free slots (one claim may be all for one URL)."""
        busy: dict[str, int] = {}
        for job in self._inflight.values():
            busy[job.url] = busy.get(job.url, 0) + 1
        cap = self.target_concurrency
        full = [url for url, n in busy.items() if n >= cap]
        rooms = [cap - n for n in busy.values() if n < cap]
        return full, min([free, cap, *rooms])

    async def _next_due(self, full: list[str]) -> float:
        async with self._db.acquire() as conn:
            seconds: float | None = await conn.fetchval(_NEXT_DUE, full)
        if seconds is None:
            return self.poll_interval
        return min(self.poll_interval, max(0.01, seconds))

    async def _claim(self, limit: int, full: Sequence[str] = ()) -> list[_Job]:
        """Claim up to `limit` due rows (FOR UPDATE SKIP LOCKED) under a lease, none of the
        URLs in `full`."""
        token = uuid.uuid4()
        async with self._db.acquire() as conn:
            records = await conn.fetch(_CLAIM, limit, self.lease, token, list(full))
        return [
            _Job(
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

    def _spawn(self, job: _Job) -> None:
        task = asyncio.create_task(self._deliver(job), name=f"webhook-{job.id}")
        self._inflight[task] = job

        def done(t: asyncio.Task[None]) -> None:
            self._inflight.pop(t, None)
            self._wake.set()
            if not t.cancelled() and t.exception() is not None:
                log.error("webhook delivery %d crashed: %r", job.id, t.exception())

        task.add_done_callback(done)

    async def _deliver(self, job: _Job) -> None:
        if job.attempts > self.max_attempts:
            # A lease that ran out after the last attempt (its worker died): no more tries.
            outcome = _Outcome("dead", None, "lease expired after the last attempt")
        else:
            outcome = await self._attempt(job)
        level = _LOG_LEVELS[outcome.status]
        if log.isEnabledFor(level):
            # Ids, type, status code and attempt only: no body, secret, URL or error text.
            answer = "no answer" if outcome.code is None else f"HTTP {outcome.code}"
            then = (
                f"retry in {outcome.delay:.2f}s" if outcome.status == "pending" else outcome.status
            )
            log.log(
                level,
                "webhook delivery %d (event %s, %s) attempt %d: %s, %s",
                job.id,
                job.event_id,
                job.type,
                job.attempts,
                answer,
                then,
            )
        # The outcome is written even if stop() cancels us now: a delivered row must not be
        # given back and sent again.
        job.recording = True
        record = asyncio.ensure_future(self._record(job, outcome))
        self._recording.add(record)
        record.add_done_callback(self._recording.discard)
        await asyncio.shield(record)

    async def _attempt(self, job: _Job) -> _Outcome:
        """One POST; its outcome (delivered, retry after a delay, or dead)."""
        if job.secret is None:
            return self._failed(job, None, "no signing secret for this target", None)
        data = job.data
        if is_sealed(data):
            try:
                where = _seal_context(job.event_id, job.session_id)
                data = json.loads(open_sealed(self._sealer, data, where))
            except (SealError, ValueError) as exc:
                return _Outcome("dead", None, f"cannot open the stored event: {exc}"[:_ERROR_LIMIT])
        body = encode_body(job.event_id, job.type, job.session_id, job.occurred_at, data)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Wahttp-Event": job.type,
            "X-Wahttp-Event-Id": job.event_id,
            "X-Wahttp-Delivery": str(job.id),
            "X-Wahttp-Attempt": str(job.attempts),
            "X-Wahttp-Timestamp": str(timestamp),
            "X-Wahttp-Signature": sign(job.secret, timestamp, body),
        }
        client = self._clients.get(job.target)
        if client is None:
            raise RuntimeError("the deliverer is not running")
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream("POST", job.url, content=body, headers=headers) as resp:
                    code = resp.status_code
                    retry_after = _retry_after(resp.headers.get("retry-after"), time.time())
        except AddressNotAllowed as exc:
            # Refused before any connection: dead at once, nothing learnt about the port.
            return _Outcome("dead", None, str(exc)[:_ERROR_LIMIT])
        except (TimeoutError, httpx.TimeoutException):
            return self._failed(job, None, f"timeout after {self.timeout:g}s", None)
        except Exception as exc:  # connection refused, reset, TLS, invalid URL, ...
            return self._failed(job, None, _error_text(exc), None)
        if 200 <= code < 300:
            return _Outcome("delivered", code, None)
        if code == 410:
            return _Outcome("dead", code, "410 Gone: the receiver asked to stop")
        hint = retry_after if code in (429, 503) else None
        return self._failed(job, code, f"HTTP {code}", hint)

    def _failed(self, job: _Job, code: int | None, error: str, hint: float | None) -> _Outcome:
        if job.attempts >= self.max_attempts:
            return _Outcome("dead", code, error)
        delay = self.backoff(job.attempts)
        if hint is not None:
            delay = max(delay, min(hint, self.max_delay))
        return _Outcome("pending", code, error, delay)

    async def _record(self, job: _Job, outcome: _Outcome) -> None:
        for attempt in range(_RECORD_TRIES):
            try:
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
            except Exception as exc:  # any database failure: a fresh connection may work
                if attempt + 1 == _RECORD_TRIES:
                    log.warning(
                        "webhook delivery %d: cannot record the outcome (%s); it will be retried"
                        " when its lease expires",
                        job.id,
                        type(exc).__name__,
                    )
                    return
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            if status == "UPDATE 0":
                log.warning(
                    "webhook delivery %d: outcome not recorded, the row is no longer ours"
                    " (recorded by an earlier try, or the lease ran out)",
                    job.id,
                )
            return

    # -- LISTEN/NOTIFY -------------------------------------------------------------------------
    def _notified(self, *_args: object) -> None:
        self._wake.set()

    async def _ensure_listening(self) -> bool:
        """LISTEN on a pool connection of our own if not yet; False if that failed.

        A connection the server cut may not know it yet and fail the LISTEN: the caller
        then tries again soon (the claim that follows finds what a missed NOTIFY announced).
        """
        if not self._listen:
            return True
        if self._listener is not None:
            if self._listening():
                return True
            await self._unlisten()
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
        self._listener = conn
        return True

    def _listening(self) -> bool:
        try:
            return not self._listener.is_closed()
        except asyncpg.InterfaceError:  # the pool took the broken connection back
            return False

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.remove_termination_listener(self._notified)
        with contextlib.suppress(Exception):
            await conn.remove_listener(NOTIFY_CHANNEL, self._notified)
        with contextlib.suppress(Exception):
            await self._db.pool.release(conn)
