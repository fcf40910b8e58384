"""SessionRepository against the machine's PostgreSQL and the embedded one."""

from __future__ import annotations

import asyncio

import pytest

from wahttp.server.db import Database
from wahttp.server.store import (
    PostgresAuthStore,
    SessionExists,
    SessionNotFound,
    SessionRepository,
)
from wahttp.wa.auth.creds import new_creds
from wahttp.wa.errors import StoreError


async def test_create_get_list(db: Database) -> None:
    repo = SessionRepository(db)
    first = await repo.create("one", webhook_url="https://example.test/hook", push_name="Ann")
    assert first.id == "one"
    assert first.webhook_url == "https://example.test/hook"
    assert first.push_name == "Ann"
    assert not first.has_auth
    assert first.created_at.tzinfo is not None
    assert await repo.get("one") == first
    await repo.create("two")
    assert [r.id for r in await repo.list()] == ["one", "two"]
    assert await repo.get("three") is None


async def test_create_taken_id(db: Database) -> None:
    repo = SessionRepository(db)
    await repo.create("dup")
    with pytest.raises(SessionExists):
        await repo.create("dup")
    assert issubclass(SessionExists, StoreError)
    with pytest.raises(ValueError):
        await repo.create("")


async def test_concurrent_create_of_one_id(db: Database) -> None:
    repo = SessionRepository(db)
    results = await asyncio.gather(*(repo.create("same") for _ in range(5)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, SessionExists) for r in results if isinstance(r, BaseException))


async def test_delete(db: Database) -> None:
    repo = SessionRepository(db)
    await repo.create("x")
    assert await repo.delete("x")
    assert not await repo.delete("x")
    assert await repo.get("x") is None


async def test_updates(db: Database) -> None:
    repo = SessionRepository(db)
    created = await repo.create("s")
    await repo.set_webhook("s", "https://example.test/h2")
    await repo.set_push_name("s", "Bob")
    row = await repo.get("s")
    assert row is not None
    assert (row.webhook_url, row.push_name) == ("https://example.test/h2", "Bob")
    await repo.set_webhook("s", None)
    before = await repo.get("s")
    await repo.touch("s")
    after = await repo.get("s")
    assert before is not None and after is not None
    assert after.webhook_url is None
    assert after.updated_at >= before.updated_at >= created.created_at
    assert after.created_at == created.created_at
    for call in (
        repo.touch("nope"),
        repo.set_webhook("nope", "u"),
        repo.set_push_name("nope", "n"),
    ):
        with pytest.raises(SessionNotFound):
            await call


async def test_has_auth_follows_creds(db: Database) -> None:
    repo = SessionRepository(db)
    await repo.create("auth")
    store = PostgresAuthStore(db, "auth")
    await store.save_creds(new_creds())
    row = await repo.get("auth")
    assert row is not None and row.has_auth
    await store.clear()
    row = await repo.get("auth")
    assert row is not None and not row.has_auth


async def test_export_of_repository(db: Database) -> None:
    repo = SessionRepository(db)
    await repo.create("e")
    assert await repo.export_auth_json("e") == {}
    with pytest.raises(SessionNotFound):
        await repo.export_auth_json("missing")
