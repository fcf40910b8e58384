"""Session API keys: create (the key is shown once), list, revoke. Admin key only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from wahttp.server.auth import ApiAuth, ApiKeyRepository, ApiKeyRow, get_auth, require_admin
from wahttp.server.errors import ApiError, not_found
from wahttp.server.schemas import SESSION_ID_PATTERN, Deleted, Name

router = APIRouter(prefix="/keys", tags=["keys"], dependencies=[Depends(require_admin)])


def get_keys(auth: Annotated[ApiAuth, Depends(get_auth)]) -> ApiKeyRepository:
    if auth.keys is None:
        raise ApiError(503, "keys_unavailable", "API keys are not stored on this server")
    return auth.keys


KeysDep = Annotated[ApiKeyRepository, Depends(get_keys)]


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session: str = Field(pattern=SESSION_ID_PATTERN, description="the session the key reaches")
    name: Name | None = Field(default=None, max_length=100, description="a label for people")


class KeyInfo(BaseModel):
    id: UUID
    session: str
    name: str | None
    prefix: str = Field(description="the key's first characters (not secret), to recognise it")
    created_at: datetime

    @classmethod
    def of(cls, row: ApiKeyRow) -> KeyInfo:
        return cls(
            id=row.id,
            session=row.session_id,
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
        )


class NewKey(KeyInfo):
    key: str = Field(description="the key itself: shown only in this answer, store it now")


@router.post("", status_code=201, response_model=NewKey)
async def create_key(body: CreateKey, keys: KeysDep) -> NewKey:
    """A new key that reaches only this session's endpoints."""
    made = await keys.create(body.session, body.name)
    if made is None:
        raise not_found(body.session)
    row, key = made
    return NewKey(**KeyInfo.of(row).model_dump(), key=key)


@router.get("", response_model=list[KeyInfo])
async def list_keys(
    keys: KeysDep,
    session: Annotated[
        str | None, Query(pattern=SESSION_ID_PATTERN, description="only this session's keys")
    ] = None,
) -> list[KeyInfo]:
    """Keys (without their secrets), oldest first."""
    return [KeyInfo.of(row) for row in await keys.list(session)]


@router.delete("/{key_id}", response_model=Deleted)
async def revoke_key(
    key_id: Annotated[UUID, Path(description="the key's id")], keys: KeysDep
) -> Deleted:
    """Revoke a key: it stops working at once."""
    if not await keys.revoke(key_id):
        raise ApiError(404, "key_not_found", f"no API key with id {key_id}")
    return Deleted(success=True, id=str(key_id))
