"""What a receiver sees: the event types, the POST body and its headers, the `data` shapes.

Every POST has the body (compact JSON, UTF-8)::

    {"id": "<event id, a UUID>",
     "type": "message" | "message.ack" | "session.status" | "call" | "contact.picture",
     "session": "<session id>" | null, "timestamp": <when it happened, Unix time in ms>,
     "data": {...}}

The event id is the same for every target and every retry of one event: receivers deduplicate
on it. `data` is what server/events.py builds for each type (the TypedDicts below; README
"Webhooks" lists the fields). Headers::

    Content-Type: application/json
    X-Wahttp-Event: <type>
    X-Wahttp-Event-Id: <event id>
    X-Wahttp-Delivery: <outbox row id>
    X-Wahttp-Attempt: <1, 2, ...>
    X-Wahttp-Timestamp: <Unix seconds when this attempt was signed>
    X-Wahttp-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Wahttp-Timestamp>." + body)>
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict, get_args

from wahttp.server.db import dumps

EventType = Literal["message", "message.ack", "session.status", "call", "contact.picture"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

HEADER_EVENT = "X-Wahttp-Event"
HEADER_EVENT_ID = "X-Wahttp-Event-Id"
HEADER_DELIVERY = "X-Wahttp-Delivery"
HEADER_ATTEMPT = "X-Wahttp-Attempt"
HEADER_TIMESTAMP = "X-Wahttp-Timestamp"
HEADER_SIGNATURE = "X-Wahttp-Signature"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    """`data` of a `message.ack` event; `error` only with status "failed" (null: no reason)."""

    id: str
    chat: str
    status: str
    device: str | None
    error: NotRequired[dict[str, Any] | None]


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


class PictureData(TypedDict):
    """`data` of a `contact.picture` event."""

    jid: str
    author: str | None
    pictureId: str | None
    removed: bool
    timestamp: int


class StatusData(TypedDict):
    """`data` of a `session.status` event."""

    state: str
    since: str
    jid: str | None
    lastDisconnect: dict[str, Any] | None
    at: str


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
    return dumps(body).encode("utf-8")


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
