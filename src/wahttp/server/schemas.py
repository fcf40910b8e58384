"""Request and response models of the REST API (the Node.js original's shapes, then ours)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wahttp.wa.client.pair_code import normalize_number

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN, description="chosen id")
    webhook_url: str | None = Field(default=None, alias="webhookUrl", max_length=2048)
    push_name: str | None = Field(default=None, alias="pushName", max_length=64)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must start with http:// or https://")
        return value

    @field_validator("id")
    @classmethod
    def _no_dots_only(cls, value: str | None) -> str | None:
        if value is not None and set(value) <= {"."}:
            raise ValueError("a session id cannot be only dots")
        return value


class Created(BaseModel):
    id: str


class SessionSummary(BaseModel):
    id: str
    created_at: datetime
    updated_at: datetime
    status: str


class PairRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    number: str = Field(min_length=1, max_length=32, description="phone number, e.g. +1234567890")

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


class QRResponse(BaseModel):
    qr: str


class Health(BaseModel):
    status: str
    timestamp: datetime
    database: str
    sessions: dict[str, Any]


class Deleted(BaseModel):
    success: bool
    id: str
