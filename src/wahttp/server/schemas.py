"""Request and response models of the REST API (the Node.js original's shapes, then ours)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from wahttp.server.webhooks import check_url
from wahttp.wa.client.pair_code import normalize_number
from wahttp.wa.jid import LID, S_WHATSAPP_NET, Jid

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
INT64_MAX = 2**63 - 1  # PostgreSQL's bigint: integer path and query parameters end here

# Characters no stored string may hold: NUL (PostgreSQL's text cannot) and lone surrogates
# (not UTF-8); names and ids refuse every other control character too (tab, newline, ESC...).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL, tab, newline, ...)")
    return value


def no_nul(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL characters or lone surrogates")
    return value


Name = Annotated[str, AfterValidator(no_control_characters)]
"""A name, id or number in a request body: printable text only."""
Text = Annotated[str, AfterValidator(no_nul)]
"""Free text (a message): newlines and tabs are fine, NUL is not."""


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN, description="chosen id")
    webhook_url: str | None = Field(default=None, alias="webhookUrl", max_length=2048)
    push_name: Name | None = Field(default=None, alias="pushName", max_length=64)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value)  # InvalidWebhookUrl is a ValueError: a 400 with its reason
        return value

    @field_validator("id")
    @classmethod
    def _no_dots_only(cls, value: str | None) -> str | None:
        if value is not None and set(value) <= {"."}:
            raise ValueError("a session id cannot be only dots")
        return value


MAX_TEXT = 65536


class SendMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    to: Name = Field(min_length=1, max_length=128, description="phone number (+E.164) or JID")
    message: Text = Field(min_length=1, description="the text to send")

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the message is empty")
        return value


class SendResponse(BaseModel):
    success: bool
    messageId: str  # the original's field name
    timestamp: int


class MessageError(BaseModel):
    """Why a sent message failed: the server's ack error code (463: no valid privacy token,
    479: invalid stanza, ...; null when there was none, e.g. no ack in time) and its meaning."""

    code: int | None
    reason: str


class MessageStatus(BaseModel):
    id: str
    chat: str
    from_me: bool
    status: str
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime
    updated_at: datetime
    error: MessageError | None = None


def parse_recipient(to: str) -> Jid:
    """A phone number or a user JID; ValueError saying why otherwise. One place for this rule."""
    text = to.strip()
    if "@" not in text:
        return Jid(normalize_number(text), S_WHATSAPP_NET)
    jid = Jid.parse(text)
    if jid.is_group() or jid.server not in (S_WHATSAPP_NET, LID):
        raise ValueError("only user chats (@s.whatsapp.net or @lid) can be messaged so far")
    if not jid.user.isdigit():
        raise ValueError("a user JID has digits before the @")
    return jid.to_non_ad()


class Created(BaseModel):
    id: str


class SessionSummary(BaseModel):
    id: str
    created_at: datetime
    updated_at: datetime
    status: str


class PairRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    number: Name = Field(min_length=1, max_length=32, description="phone number, e.g. +1234567890")

    @field_validator("number")
    @classmethod
    def _plausible(cls, value: str) -> str:
        return normalize_number(value)


class PairResponse(BaseModel):
    success: bool
    pairingCode: str  # the original's field name
    message: str


class Disconnect(BaseModel):
    code: int
    reason: str
    at: datetime


class Contact(BaseModel):
    """What the account's app state (synced from the phone) says of one chat or contact."""

    model_config = ConfigDict(populate_by_name=True)

    jid: str
    name: str | None = None
    archived: bool = False
    pinned: bool = False
    muted_until: int | None = Field(
        default=None, alias="mutedUntil", description="unix ms; -1 = muted forever"
    )


class Chat(BaseModel):
    """One chat of a session (GET /sessions/{id}/chats): from its message records and the
    app state the phone synced. `name`, `lastMessageAt` and `unread` are the contract's; the
    rest is additive."""

    model_config = ConfigDict(populate_by_name=True)

    jid: str
    name: str | None = Field(
        default=None, description="the address-book name (app state), else the push name"
    )
    last_message_at: int = Field(
        alias="lastMessageAt", description="unix s: when the chat's newest message was recorded"
    )
    unread: int = Field(
        description="received messages newer than the chat's read marker (a read receipt this "
        "session sent, or the phone marking the chat read)"
    )
    push_name: str | None = Field(
        default=None, alias="pushName", description="the newest push name the contact sent"
    )
    archived: bool = False
    pinned: bool = False
    muted_until: int | None = Field(
        default=None, alias="mutedUntil", description="unix ms; -1 = muted forever"
    )
    marked_unread: bool = Field(
        default=False, alias="markedUnread", description="the phone marked the chat unread"
    )


MAX_CHATS_PAGE = 1000


class SessionStatus(BaseModel):
    id: str
    state: str
    since: datetime
    jid: str | None
    lid: str | None
    has_auth: bool
    linked: bool
    qr_available: bool
    last_disconnect: Disconnect | None
    worker: str | None = None
    """The worker (`wahttp serve` process) running this session."""
    received_pending_notifications: bool = False
    """The server delivered what waited for this session while it was offline (its
    `<ib><offline>` came on the current stream); what arrives now is live."""


class QRResponse(BaseModel):
    qr: str


class Health(BaseModel):
    status: str
    """"ok" (200) only while this worker can do its job; "degraded" (503) otherwise."""
    timestamp: datetime
    database: str
    sessions: dict[str, Any]
    checks: dict[str, str] = Field(default_factory=dict)
    """Each check ("database", "cluster", "sessions"): "ok", or what is wrong."""
    worker: str | None = None
    """This worker's id (host, pid): only for a caller with the admin key."""


class Deleted(BaseModel):
    success: bool
    id: str


class Done(BaseModel):
    success: bool
    id: str
