"""Where an event goes: a session's own webhook, the global one, and each URL's share of slots.

A session may have its own webhook (`sessions.webhook_url`, set at create or with
`PUT /sessions/{id}/webhook`) with its own random secret (a column default, also filled in on
first use for rows that have none); the service may have a global one (`WAHTTP_WEBHOOK_URL`,
signed with the required `WAHTTP_WEBHOOK_SECRET`) that gets every session's events. Nothing is
ever sent unsigned.

Slots: at most `concurrency` deliveries run at once in a process and at most
`target_concurrency` of them for one URL (`claim_room`), so a slow or dead endpoint delays only
its own events.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import asyncpg

from wahttp.server.db import Database
from wahttp.server.webhooks.signing import check_secret, new_secret
from wahttp.server.webhooks.urls import InvalidWebhookUrl, check_url

log = logging.getLogger(__name__)

TargetKind = Literal["session", "global"]


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


def claim_room(busy_urls: Iterable[str], free: int, cap: int) -> tuple[list[str], int]:
    """The URLs whose `cap` slots are all taken by the deliveries in flight (one URL each in
    `busy_urls`), and how many rows one claim may take so that no URL gets more than its free
    slots (one claim may be all for one URL) nor the process more than `free`."""
    busy: dict[str, int] = {}
    for url in busy_urls:
        busy[url] = busy.get(url, 0) + 1
    full = [url for url, n in busy.items() if n >= cap]
    rooms = [cap - n for n in busy.values() if n < cap]
    return full, min([free, cap, *rooms])


class SessionWebhooks:
    """Sessions' webhook URLs and secrets (columns of `sessions`), and the global target."""

    def __init__(
        self, db: Database, global_url: str | None = None, global_secret: str | None = None
    ) -> None:
        self._db = db
        self.global_url = global_url
        self._global_secret = global_secret

    async def get(self, session_id: str) -> WebhookConfig | None:
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

    async def set(
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
