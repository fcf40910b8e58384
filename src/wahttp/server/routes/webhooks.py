"""A session's webhook (URL and signing secret) and its outbox of deliveries.

A session key sees and re-queues only its session's own webhook deliveries (target
"session"); the global webhook's rows (the operator's URL, which may hold a token) are the
admin's alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from wahttp.server.auth import Principal, PrincipalDep, require_session_access
from wahttp.server.deps import SessionRow
from wahttp.server.errors import ApiError
from wahttp.server.schemas import INT64_MAX
from wahttp.server.webhooks import (
    MAX_URL_LENGTH,
    MIN_SECRET_LENGTH,
    DeliveryStatus,
    InvalidWebhookUrl,
    TargetKind,
    WebhookPolicyError,
    Webhooks,
    check_secret,
    check_url,
)

router = APIRouter(
    prefix="/sessions", tags=["webhooks"], dependencies=[Depends(require_session_access)]
)


def get_webhooks(request: Request) -> Webhooks:
    """The service's Webhooks (`Services.webhooks`)."""
    webhooks: Webhooks | None = getattr(request.app.state.services, "webhooks", None)
    if webhooks is None:
        raise ApiError(503, "webhooks_unavailable", "webhooks are not configured on this server")
    return webhooks


WebhooksDep = Annotated[Webhooks, Depends(get_webhooks)]


async def check_webhook_target(webhooks: Webhooks, url: str) -> None:
    """400 `webhook_not_allowed` unless a URL set through the API may be used (the policy of
    server/webhooks/urls.py on its host and every address it resolves to)."""
    try:
        await webhooks.check_target(url)
    except (WebhookPolicyError, InvalidWebhookUrl) as exc:
        raise ApiError(400, "webhook_not_allowed", str(exc)) from None


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        description="http(s) URL that gets this session's events; null removes it",
        max_length=MAX_URL_LENGTH,
        examples=["https://example.com/hooks/whatsapp"],
    )
    secret: str | None = Field(
        default=None,
        min_length=MIN_SECRET_LENGTH,
        max_length=256,
        description="signing secret; omitted: the session keeps its own (random) secret",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_url(value)
            except InvalidWebhookUrl as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("secret")
    @classmethod
    def _printable_secret(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)


class WebhookInfo(BaseModel):
    url: str | None = Field(description="the session's webhook URL (null: none)")
    secret: str = Field(description="the HMAC-SHA256 key of X-Wahttp-Signature")


class Delivery(BaseModel):
    id: int = Field(description="outbox row (X-Wahttp-Delivery)")
    event_id: str = Field(description="event id (X-Wahttp-Event-Id), shared by all targets")
    type: str
    target: Literal["session", "global"]
    url: str
    status: DeliveryStatus
    attempts: int
    last_status: int | None = Field(description="HTTP status of the last attempt")
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when pending: the next attempt")


@router.get("/{session_id}/webhook", response_model=WebhookInfo)
async def get_webhook(row: SessionRow, webhooks: WebhooksDep) -> WebhookInfo:
    """The session's webhook URL and the secret its deliveries are signed with."""
    config = await webhooks.get_webhook(row.id)
    if config is None:
        raise ApiError(404, "session_not_found", f"no session with id {row.id!r}")
    return WebhookInfo(url=config.url, secret=config.secret)


@router.put("/{session_id}/webhook", response_model=WebhookInfo)
async def put_webhook(row: SessionRow, body: WebhookUpdate, webhooks: WebhooksDep) -> WebhookInfo:
    """Set or remove the session's webhook URL (and optionally its secret).

    Events already queued keep the URL they were queued for. 400 `webhook_not_allowed` for a
    URL whose host is, or resolves to, an address the policy refuses.
    """
    if body.url is not None:
        await check_webhook_target(webhooks, body.url)
    config = await webhooks.set_webhook(row.id, body.url, body.secret)
    if config is None:
        raise ApiError(404, "session_not_found", f"no session with id {row.id!r}")
    return WebhookInfo(url=config.url, secret=config.secret)


def _visible(who: Principal) -> TargetKind | None:
    """The targets a caller may see: all for the admin, the session's own for its key."""
    return None if who.admin else "session"


@router.get("/{session_id}/webhook/deliveries", response_model=list[Delivery])
async def list_deliveries(
    row: SessionRow,
    webhooks: WebhooksDep,
    who: PrincipalDep,
    *,
    status: Annotated[DeliveryStatus | None, Query(description="only this status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="page: ids below this one")
    ] = None,
) -> list[Delivery]:
    """The session's deliveries, newest first: its own webhook's, and for the admin key the
    global webhook's too."""
    rows = await webhooks.deliveries(
        row.id, status=status, limit=limit, before=before, target=_visible(who)
    )
    return [Delivery.model_validate(r) for r in rows]


@router.post("/{session_id}/webhook/deliveries/{delivery_id}/retry", response_model=Delivery)
async def retry_delivery(
    row: SessionRow,
    delivery_id: Annotated[int, Path(ge=1, le=INT64_MAX)],
    webhooks: WebhooksDep,
    who: PrincipalDep,
) -> Delivery:
    """Queue a dead delivery again (with a fresh count of attempts)."""
    found = await webhooks.delivery(delivery_id)
    visible = _visible(who)
    if (
        found is None
        or found["session"] != row.id
        or (visible is not None and found["target"] != visible)
    ):
        raise ApiError(404, "delivery_not_found", f"no delivery {delivery_id} for this session")
    if found["status"] != "dead" or not await webhooks.redeliver(delivery_id):
        raise ApiError(409, "not_dead", "only a dead delivery can be retried")
    again = await webhooks.delivery(delivery_id)
    return Delivery.model_validate(again if again is not None else found)
