"""The Webhooks facade the service holds: configuration checked once, then targets, outbox and
deliverer wired together (`publish`/`emit`, the outbox's listings, `start`/`stop`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import asyncpg

from wahttp.server.db import Database
from wahttp.server.outbound import (
    AddressNotAllowed,
    InvalidOutboundUrl,
    OutboundGuard,
    OutboundPolicy,
    Resolver,
)
from wahttp.server.webhooks.contract import EVENT_TYPES, EventType, WebhookEvent
from wahttp.server.webhooks.deliverer import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TARGET_CONCURRENCY,
    Deliverer,
    HttpClientFactory,
)
from wahttp.server.webhooks.listener import Listener
from wahttp.server.webhooks.outbox import DeliveryStatus, OutboxRepository
from wahttp.server.webhooks.signing import MIN_SECRET_LENGTH
from wahttp.server.webhooks.targets import SessionWebhooks, Target, TargetKind, WebhookConfig
from wahttp.server.webhooks.urls import InvalidWebhookUrl, check_url
from wahttp.wa.auth.sealing import Sealer

log = logging.getLogger(__name__)


class Webhooks:
    """Enqueues events and runs a deliverer that drains the outbox (see the package docstring).

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
    `outbox`, `sessions` and `deliverer` are the parts, public for tests and tools.
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
        lease = lease if lease is not None else timeout + 30.0
        if lease <= timeout:
            raise ValueError("the lease must be longer than the timeout")
        self.policy = policy if policy is not None else OutboundPolicy()
        self._guards: dict[str, OutboundGuard] = {
            "session": OutboundGuard(self.policy, resolver=resolver),
            "global": OutboundGuard(self.policy.operator(), resolver=resolver),
        }
        self._db = db
        self.sessions = SessionWebhooks(db, global_url, global_secret)
        self.outbox = OutboxRepository(db, sealer)
        self.deliverer = Deliverer(
            self.outbox,
            Listener(db, self.wake) if listen else None,
            self._guards,
            max_attempts=max_attempts,
            base_delay=base_delay,
            max_delay=max_delay,
            timeout=timeout,
            concurrency=concurrency,
            target_concurrency=min(target_concurrency, concurrency),
            lease=lease,
            poll_interval=poll_interval,
            jitter=jitter,
            http_client_factory=http_client_factory,
            sealer=sealer,
        )

    def __repr__(self) -> str:
        return f"Webhooks(global={'set' if self.global_url else None}, running={self.running})"

    @property
    def global_url(self) -> str | None:
        return self.sessions.global_url

    @property
    def lease(self) -> float:
        """Seconds a claim lasts before another worker may take the row over."""
        return self.deliverer.lease

    @property
    def running(self) -> bool:
        return self.deliverer.running

    def backoff(self, attempt: int) -> float:
        """Seconds before the retry that follows attempt `attempt` (1-based), with jitter."""
        return self.deliverer.backoff(attempt)

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

    # -- sessions' webhooks --------------------------------------------------------------------
    async def get_webhook(self, session_id: str) -> WebhookConfig | None:
        """The session's webhook URL and secret (generated if missing); None: no such session."""
        return await self.sessions.get(session_id)

    async def set_webhook(
        self, session_id: str, url: str | None, secret: str | None = None
    ) -> WebhookConfig | None:
        """Set (or with None, remove) the session's webhook URL, and its secret if given."""
        return await self.sessions.set(session_id, url, secret)

    async def targets(self, conn: asyncpg.Connection, session_id: str | None) -> list[Target]:
        """Where an event of this session goes now: its own webhook, then the global one."""
        return await self.sessions.targets(conn, session_id)

    # -- enqueueing ----------------------------------------------------------------------------
    async def emit(
        self,
        session_id: str | None,
        type: str,
        data: Mapping[str, Any],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Queue an event for every current target (server/events.py's EventEmitter)."""
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
        event = (
            WebhookEvent(kind, session_id, dict(data))
            if event_id is None
            else WebhookEvent(kind, session_id, dict(data), id=event_id)
        )
        if conn is not None:
            targets = await self.sessions.targets(conn, session_id)
            stored = await self.outbox.enqueue(conn, event, targets)
        else:
            async with self._db.acquire() as own:
                targets = await self.sessions.targets(own, session_id)
                if not targets:
                    return None  # no webhook: one query, no transaction
                async with own.transaction():
                    stored = await self.outbox.enqueue(own, event, targets)
        if not stored:
            return None
        self.wake()
        log.debug("queued %s event %s for %d targets", type, event.id, len(stored))
        return event.id

    def wake(self) -> None:
        """Look for due rows now (e.g. after enqueueing on a connection of one's own)."""
        self.deliverer.wake()

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
        """Outbox rows of a session (see OutboxRepository.deliveries)."""
        return await self.outbox.deliveries(session_id, status, limit, before, target=target)

    async def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        return await self.outbox.delivery(delivery_id)

    async def redeliver(self, delivery_id: int) -> bool:
        """Queue a dead row again, with a fresh count of attempts; False if it is not dead."""
        if not await self.outbox.redeliver(delivery_id):
            return False
        self.wake()
        return True

    async def prune(self, older_than: float, batch: int = 1000) -> int:
        """Delete delivered and dead rows older than `older_than` seconds (see the outbox)."""
        return await self.outbox.prune(older_than, batch)

    # -- the deliverer -------------------------------------------------------------------------
    def start(self) -> None:
        """Run the deliverer in the background (idempotent)."""
        self.deliverer.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; let in-flight deliveries finish within `timeout`, release the rest."""
        await self.deliverer.stop(timeout)
