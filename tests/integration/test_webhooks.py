"""Webhooks through the PostgreSQL outbox: signed, retried, kept across restarts, shared by
workers (SKIP LOCKED + leases), dead-lettered; and the /webhook routes. Both DB backends."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from dbtools import ORIGINAL_CREATE_TABLE, ORIGINAL_UPSERT, fresh_schema
from fastapi import FastAPI
from hooktools import Received, Receiver, eventually

from wahttp.server import errors
from wahttp.server.auth import ApiAuth
from wahttp.server.db import Database
from wahttp.server.outbound import OutboundPolicy
from wahttp.server.routes.webhooks import router
from wahttp.server.store import SessionRepository
from wahttp.server.webhooks import (
    InvalidWebhookUrl,
    WebhookEvent,
    Webhooks,
    check_url,
    encode_body,
    sign,
    verify_signature,
)

GLOBAL_SECRET = "global-secret-0123456789"
# Test receivers listen on loopback: these instances opt in as WAHTTP_WEBHOOK_ALLOW_PRIVATE does.
FAST: dict[str, Any] = {
    "policy": OutboundPolicy(allow_internal=True),
    "base_delay": 0.05,
    "max_delay": 0.2,
    "timeout": 1.0,
    "poll_interval": 0.5,
    "max_attempts": 50,
}
MakeHooks = Callable[..., Webhooks]


@pytest.fixture
async def make_hooks(db: Database) -> AsyncIterator[MakeHooks]:
    """Webhooks instances with fast test delays (overridable), all stopped at the end."""
    made: list[Webhooks] = []

    def make(database: Database | None = None, **options: Any) -> Webhooks:
        hooks = Webhooks(database or db, **{**FAST, **options})
        made.append(hooks)
        return hooks

    yield make
    for hooks in made:
        await hooks.stop(timeout=1)


async def new_session(db: Database, session_id: str, url: str | None) -> str:
    """Create a session with this webhook URL; returns its secret."""
    await SessionRepository(db).create(session_id)
    config = await Webhooks(db).set_webhook(session_id, url)
    assert config is not None
    return config.secret


async def outbox(db: Database) -> list[dict[str, Any]]:
    async with db.acquire() as conn:
        records = await conn.fetch("SELECT * FROM webhook_outbox ORDER BY id")
    return [dict(r) for r in records]


async def all_delivered(db: Database, count: int) -> None:
    async def check() -> bool:
        rows = await outbox(db)
        return len(rows) == count and all(r["status"] == "delivered" for r in rows)

    await eventually(check, timeout=15)


def assert_signed(request: Received, secret: str) -> None:
    headers = request.headers
    assert verify_signature(
        secret, headers["x-wahttp-timestamp"], request.body, headers["x-wahttp-signature"]
    ), "bad signature"
    assert abs(int(headers["x-wahttp-timestamp"]) - time.time()) < 60


# -- signatures and URLs (no database) -------------------------------------------------------------


def test_signature_scheme_is_hmac_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"x"}'
    expected = hmac.new(b"s" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s" * 16, 1700000000, body) == f"sha256={expected}"
    header = sign("s" * 16, 1700000000, body)
    now = 1700000100.0
    assert verify_signature("s" * 16, "1700000000", body, header, now=now)
    assert not verify_signature("t" * 16, "1700000000", body, header, now=now)
    assert not verify_signature("s" * 16, "1700000000", body + b" ", header, now=now)
    assert not verify_signature("s" * 16, "1700000001", body, header, now=now)
    assert not verify_signature("s" * 16, "1700000000", body, header, now=1700000301.0)
    assert verify_signature("s" * 16, 1700000000, body, header, tolerance=None)
    assert not verify_signature("s" * 16, "soon", body, header, now=now)
    assert not verify_signature("s" * 16, "1700000000", body, "sha256=zz", now=now)
    assert not verify_signature("s" * 16, "1700000000", body, "é" + header, now=now)


def test_urls_and_events_are_checked() -> None:
    assert check_url("https://example.com/x?token=1") == "https://example.com/x?token=1"
    assert check_url("HTTP://127.0.0.1:8080/") == "HTTP://127.0.0.1:8080/"
    for bad in ("ftp://example.com/", "example.com", "http://", "https:///x", "http://a b/"):
        with pytest.raises(InvalidWebhookUrl):
            check_url(bad)
    with pytest.raises(InvalidWebhookUrl):
        check_url("http://example.com:port/")
    with pytest.raises(ValueError):
        WebhookEvent("message.deleted", "s", {})  # type: ignore[arg-type]
    event = WebhookEvent(
        "message", "s", {"text": "hé"}, occurred_at=datetime(2024, 1, 2, tzinfo=UTC)
    )
    assert json.loads(event.body()) == {
        "id": event.id,
        "type": "message",
        "session": "s",
        "timestamp": 1704153600000,
        "data": {"text": "hé"},
    }
    with pytest.raises(ValueError, match="secret"):
        Webhooks(None, global_url="https://example.com/")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Webhooks(None, global_url="ftp://example.com/", global_secret=GLOBAL_SECRET)  # type: ignore[arg-type]


async def test_the_migration_gives_each_existing_session_its_own_secret(db_dsn: str) -> None:
    async with fresh_schema(db_dsn, migrate=False) as database:
        async with database.acquire() as conn:
            await conn.execute(ORIGINAL_CREATE_TABLE)
            for session_id in ("old-1", "old-2"):
                await conn.execute(ORIGINAL_UPSERT, session_id, {"creds.json": {}})
        await database.migrate()
        async with database.acquire() as conn:
            await conn.execute(ORIGINAL_UPSERT, "new-1", {"creds.json": {}})  # the original again
            secrets = await conn.fetch("SELECT id, webhook_secret FROM sessions ORDER BY id")
        values = [r["webhook_secret"] for r in secrets]
        assert len(values) == 3 and len(set(values)) == 3
        assert all(len(v) == 64 and int(v, 16) >= 0 for v in values)


# -- delivery ------------------------------------------------------------------------------------


async def test_an_event_reaches_the_session_and_the_global_webhook_signed(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    other = Receiver()
    await other.up()
    try:
        secret = await new_session(db, "alice", receiver.url)
        hooks = make_hooks(global_url=other.url, global_secret=GLOBAL_SECRET)
        hooks.start()
        data = {
            "id": "3EB0AA",
            "chat": "1555@s.whatsapp.net",
            "sender": "1555@s.whatsapp.net",
            "timestamp": 1700000000,
            "text": "hi ✓",
            "type": "conversation",
        }
        event_id = await hooks.publish("alice", "message", data)
        assert event_id is not None
        await receiver.wait_requests(1)
        await other.wait_requests(1)
        await all_delivered(db, 2)
        await asyncio.sleep(0.2)
        assert len(receiver.requests) == len(other.requests) == 1
        mine, theirs = receiver.requests[0], other.requests[0]
        assert_signed(mine, secret)
        assert_signed(theirs, GLOBAL_SECRET)
        assert not verify_signature(
            GLOBAL_SECRET,
            mine.headers["x-wahttp-timestamp"],
            mine.body,
            mine.headers["x-wahttp-signature"],
        )
        for request in (mine, theirs):
            assert request.method == "POST" and request.path == "/hook"
            assert request.headers["content-type"] == "application/json"
            assert request.headers["x-wahttp-event"] == "message"
            assert request.headers["x-wahttp-event-id"] == event_id
            assert request.headers["x-wahttp-attempt"] == "1"
            body = request.json()
            assert body["id"] == event_id and body["type"] == "message"
            assert body["session"] == "alice" and body["data"] == data
            assert abs(body["timestamp"] - time.time() * 1000) < 60_000
        assert mine.body == theirs.body
        assert mine.headers["x-wahttp-delivery"] != theirs.headers["x-wahttp-delivery"]

        listed = await hooks.deliveries("alice")
        assert {d["target"] for d in listed} == {"session", "global"}
        assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in listed)
        assert all(d["last_status"] == 200 and d["delivered_at"] is not None for d in listed)
        assert all(d["event_id"] == event_id and d["next_attempt_at"] is None for d in listed)
        assert {d["url"] for d in listed} == {receiver.url, other.url}
    finally:
        await other.down()


async def test_no_target_stores_nothing_and_one_url_gets_one_row(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "quiet", None)
    hooks = make_hooks()
    assert await hooks.publish("quiet", "session.status", {"state": "open"}) is None
    assert await hooks.publish("nobody", "session.status", {"state": "open"}) is None
    assert await hooks.publish(None, "session.status", {"state": "open"}) is None
    with pytest.raises(ValueError, match="unknown webhook event type"):
        await hooks.publish("quiet", "message.deleted", {})
    assert await outbox(db) == []
    # The session's URL is also the global one: one row, signed as the session's.
    secret = await new_session(db, "same", receiver.url)
    both = make_hooks(global_url=receiver.url, global_secret=GLOBAL_SECRET)
    both.start()
    assert await both.publish("same", "message.ack", {"id": "1", "status": "read"}) is not None
    await all_delivered(db, 1)
    assert (await outbox(db))[0]["target"] == "session"
    assert_signed(receiver.requests[0], secret)


async def test_emit_inside_a_transaction_commits_or_rolls_back_with_it(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "tx", receiver.url)
    hooks = make_hooks(poll_interval=30.0)  # only NOTIFY can wake it in time
    hooks.start()
    await asyncio.sleep(0.2)
    with pytest.raises(RuntimeError):
        async with db.acquire() as conn, conn.transaction():
            await hooks.publish("tx", "message", {"id": "lost"}, conn=conn)
            raise RuntimeError("roll back")
    async with db.acquire() as conn, conn.transaction():
        event_id = await hooks.publish("tx", "message", {"id": "kept"}, conn=conn)
        await asyncio.sleep(0.3)  # woken before the commit: nothing to see yet
        assert receiver.requests == []
    await receiver.wait_requests(1, timeout=5)
    await all_delivered(db, 1)
    assert [r.event_id for r in receiver.requests] == [event_id]


async def test_failures_are_retried_with_exponential_backoff(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    secret = await new_session(db, "bob", receiver.url)
    receiver.script.extend([500, 429, 502])
    hooks = make_hooks(base_delay=0.1, max_delay=1.0, jitter=0.0)
    hooks.start()
    event_id = await hooks.publish("bob", "message.ack", {"id": "m1", "status": "delivered"})
    await all_delivered(db, 1)
    requests = receiver.requests
    assert [r.answered for r in requests] == [500, 429, 502, 200]
    assert [r.headers["x-wahttp-attempt"] for r in requests] == ["1", "2", "3", "4"]
    assert {r.event_id for r in requests} == {event_id}
    assert len({r.body for r in requests}) == 1  # the same body every time
    for request in requests:
        assert_signed(request, secret)
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    for gap, nominal in zip(gaps, [0.1, 0.2, 0.4], strict=True):
        assert gap >= nominal * 0.9, gaps
    row = (await outbox(db))[0]
    assert row["attempts"] == 4 and row["last_status"] == 200 and row["last_error"] is None


async def test_a_receiver_outage_loses_nothing_and_delivers_each_event_once(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    secret = await new_session(db, "carol", receiver.url)
    await receiver.down()
    hooks = make_hooks(base_delay=0.02, max_delay=0.15, concurrency=4)
    hooks.start()
    kinds = ["message", "message.ack", "session.status"]
    ids = await asyncio.gather(*(hooks.publish("carol", kinds[i % 3], {"n": i}) for i in range(30)))

    async def retried() -> bool:
        return all(r["attempts"] >= 4 for r in await outbox(db))

    await eventually(retried, timeout=10)
    rows = await outbox(db)
    assert all(r["status"] == "pending" and r["last_error"] for r in rows)
    assert all(r["last_status"] is None for r in rows)  # never answered
    await receiver.up()
    await all_delivered(db, 30)
    await asyncio.sleep(0.3)
    counts = receiver.delivered_counts()
    assert set(counts) == set(ids) and all(n == 1 for n in counts.values())
    assert len(receiver.requests) == 30
    for request in receiver.requests:
        assert_signed(request, secret)
    assert sorted(r.json()["data"]["n"] for r in receiver.requests) == list(range(30))


async def test_a_timeout_is_retried_and_the_receiver_may_see_it_again(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "dave", receiver.url)
    receiver.script.append("hang")
    hooks = make_hooks(timeout=0.3)
    hooks.start()
    event_id = await hooks.publish("dave", "message", {"id": "slow"})
    await all_delivered(db, 1)
    assert [r.event_id for r in receiver.requests] == [event_id, event_id]
    assert [r.answered for r in receiver.requests] == [None, 200]
    row = (await outbox(db))[0]
    assert row["attempts"] == 2 and row["last_status"] == 200


async def test_dead_after_max_attempts_then_redelivered(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "erin", receiver.url)
    receiver.mode = "fail"
    hooks = make_hooks(max_attempts=3)
    hooks.start()
    await hooks.publish("erin", "message", {"id": "x"})

    async def dead() -> bool:
        return bool((await outbox(db))[0]["status"] == "dead")

    await eventually(dead)
    await asyncio.sleep(0.3)
    row = (await outbox(db))[0]
    assert row["attempts"] == 3 and row["last_status"] == 500 and row["last_error"] == "HTTP 500"
    assert len(receiver.requests) == 3
    listed = await hooks.deliveries("erin", status="dead")
    assert [d["id"] for d in listed] == [row["id"]]
    assert await hooks.deliveries("erin", status="pending") == []

    receiver.mode = "ok"
    assert await hooks.redeliver(row["id"]) is True
    await all_delivered(db, 1)
    assert len(receiver.requests) == 4 and receiver.requests[-1].headers["x-wahttp-attempt"] == "1"
    assert await hooks.redeliver(row["id"]) is False  # delivered: never twice
    assert await hooks.prune(0) == 1 and await outbox(db) == []


async def test_410_gone_is_dead_at_once(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "fay", receiver.url)
    receiver.mode = "gone"
    hooks = make_hooks()
    hooks.start()
    await hooks.publish("fay", "session.status", {"state": "open"})

    async def dead() -> bool:
        return bool((await outbox(db))[0]["status"] == "dead")

    await eventually(dead)
    await asyncio.sleep(0.2)
    row = (await outbox(db))[0]
    assert row["attempts"] == 1 and row["last_status"] == 410
    assert len(receiver.requests) == 1


async def test_a_restart_mid_retry_loses_nothing(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    secret = await new_session(db, "gus", receiver.url)
    receiver.mode = "fail"
    first = make_hooks()
    first.start()
    ids = [await first.publish("gus", "message", {"n": i}) for i in range(10)]

    async def retrying() -> bool:
        return all(r["attempts"] >= 2 for r in await outbox(db))

    await eventually(retrying)
    await first.stop()
    # While no deliverer runs, events are still queued.
    ids += [await first.publish("gus", "message.ack", {"n": i}) for i in range(10, 15)]
    receiver.mode = "ok"
    await asyncio.sleep(0.2)
    assert receiver.delivered() == []
    second = make_hooks()
    second.start()
    await all_delivered(db, 15)
    await asyncio.sleep(0.2)
    counts = receiver.delivered_counts()
    assert set(counts) == set(ids) and all(n == 1 for n in counts.values())
    for request in receiver.delivered():
        assert_signed(request, secret)


async def test_stop_lets_go_of_a_hung_delivery_at_its_deadline(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "hal", receiver.url)
    receiver.mode = "hang"
    first = make_hooks(timeout=10.0)  # lease 40 s: only the release lets another take it
    first.start()
    await first.publish("hal", "message", {"id": "h"})
    await receiver.wait_requests(1)
    started = time.monotonic()
    await first.stop(timeout=0.2)
    assert time.monotonic() - started < 2
    row = (await outbox(db))[0]
    assert row["status"] == "pending" and row["locked_until"] is None and row["attempts"] == 0
    receiver.mode = "ok"
    second = make_hooks(timeout=10.0)
    second.start()
    await all_delivered(db, 1)
    assert (await outbox(db))[0]["attempts"] == 1


async def test_two_workers_drain_one_outbox_each_row_once(
    db: Database, db_dsn: str, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "ivy", receiver.url)
    receiver.delay = 0.02
    async with db.acquire() as conn:
        schema = await conn.fetchval("SELECT current_schema()")
    other_db = await Database.connect(db_dsn, max_size=5, server_settings={"search_path": schema})
    try:
        workers = [
            make_hooks(
                database,
                concurrency=3,
                http_client_factory=lambda name=name: httpx.AsyncClient(headers={"X-Worker": name}),
            )
            for name, database in (("a", db), ("b", other_db))
        ]
        ids = [await workers[0].publish("ivy", "message", {"n": i}) for i in range(40)]
        for worker in workers:
            worker.start()
        await all_delivered(db, 40)
        await asyncio.sleep(0.2)
        counts = receiver.delivered_counts()
        assert set(counts) == set(ids) and all(n == 1 for n in counts.values())
        assert len(receiver.requests) == 40
        by_worker = {r.headers["x-worker"] for r in receiver.requests}
        assert by_worker == {"a", "b"}
        for worker in workers:
            await worker.stop()
    finally:
        await other_db.close()


async def test_a_crashed_claimers_lease_expires_and_another_delivers(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    from wahttp.server.webhooks import _Outcome

    await new_session(db, "jay", receiver.url)
    crashed = make_hooks(timeout=0.2, lease=0.8)
    event_id = await crashed.publish("jay", "message", {"id": "c"})
    claimed = await crashed._claim(10)  # claims, then "dies" without delivering
    assert [job.event_id for job in claimed] == [event_id]
    survivor = make_hooks()
    started = time.monotonic()
    survivor.start()
    await all_delivered(db, 1)
    assert time.monotonic() - started >= 0.6  # not before the lease ran out
    row = (await outbox(db))[0]
    assert row["attempts"] == 2 and row["claim_token"] is None
    assert [r.event_id for r in receiver.requests] == [event_id]
    # The crashed worker's late outcome cannot touch the row again.
    await crashed._record(claimed[0], _Outcome("pending", 500, "late", 0.0))
    again = (await outbox(db))[0]
    assert again["status"] == "delivered" and again["delivered_at"] == row["delivered_at"]


async def test_a_lease_lost_on_the_last_attempt_ends_dead(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "kim", receiver.url)
    crashed = make_hooks(timeout=0.1, lease=0.3, max_attempts=1)
    await crashed.publish("kim", "message", {"id": "k"})
    assert len(await crashed._claim(10)) == 1
    survivor = make_hooks(max_attempts=1)
    survivor.start()

    async def dead() -> bool:
        return bool((await outbox(db))[0]["status"] == "dead")

    await eventually(dead)
    row = (await outbox(db))[0]
    assert row["last_error"] == "lease expired after the last attempt"
    assert receiver.requests == []


async def test_the_deliverer_survives_its_database_connections_being_cut(
    db: Database, db_dsn: str, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "oz", receiver.url)
    name = f"wahttp-hooks-{time.monotonic_ns()}"
    async with db.acquire() as conn:
        schema = await conn.fetchval("SELECT current_schema()")
    own = await Database.connect(
        db_dsn, server_settings={"search_path": schema, "application_name": name}
    )
    try:
        hooks = make_hooks(own, poll_interval=30.0)  # only a working LISTEN wakes it in time
        hooks.start()
        first = await hooks.publish("oz", "message", {"n": 1})
        await receiver.wait_requests(1, timeout=5)
        async with db.acquire() as conn:
            cut = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                name,
            )
        assert cut >= 1
        await asyncio.sleep(0.3)
        # Queued through another pool: the deliverer learns of it by NOTIFY alone.
        second = await Webhooks(db).publish("oz", "message", {"n": 2})
        await all_delivered(db, 2)
        assert [r.event_id for r in receiver.requests] == [first, second]
        await hooks.stop()
    finally:
        await own.close()


async def test_a_failed_listen_is_tried_again_soon(
    db: Database, make_hooks: MakeHooks, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection the server cut, not yet known as closed, fails LISTEN: the deliverer must
    # not fall back to its slow poll but LISTEN again, or it misses NOTIFYs for a long time.
    await new_session(db, "ivy", receiver.url)
    real = asyncpg.Connection.add_listener
    failures = 2

    async def flaky(self: asyncpg.Connection, channel: str, callback: Any) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise asyncpg.InternalClientError("cannot switch to state 15")
        await real(self, channel, callback)

    monkeypatch.setattr(asyncpg.Connection, "add_listener", flaky)
    hooks = make_hooks(poll_interval=30.0)  # only a working LISTEN wakes it in time
    hooks.start()

    async def listening() -> bool:
        return failures == 0 and hooks._listener is not None

    await eventually(listening, timeout=5)
    await asyncio.sleep(0.2)  # past any claim of that loop turn
    # Queued through another pool: the deliverer learns of it by NOTIFY alone.
    event = await Webhooks(db).publish("ivy", "message", {"n": 1})
    await receiver.wait_requests(1, timeout=5)
    assert [r.event_id for r in receiver.requests] == [event]


async def test_secrets_follow_rotation_and_survive_session_deletion(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    old = await new_session(db, "lee", receiver.url)
    await new_session(db, "max", receiver.url)
    max_secret = await Webhooks(db).get_webhook("max")
    assert max_secret is not None and max_secret.secret != old  # one secret per session
    await receiver.down()
    hooks = make_hooks()
    hooks.start()
    rotated_event = await hooks.publish("lee", "message", {"id": "r"})
    gone_event = await hooks.publish("max", "session.status", {"state": "logged_out"})
    rotated = await hooks.set_webhook("lee", receiver.url, "rotated-secret-0123456789")
    assert rotated is not None and rotated.secret == "rotated-secret-0123456789"
    assert await SessionRepository(db).delete("max")
    await asyncio.sleep(0.2)
    await receiver.up()
    await all_delivered(db, 2)
    by_event = {r.event_id: r for r in receiver.delivered()}
    assert_signed(by_event[rotated_event or ""], "rotated-secret-0123456789")
    assert_signed(by_event[gone_event or ""], max_secret.secret)


async def test_logs_name_ids_never_bodies_secrets_or_urls(
    db: Database, make_hooks: MakeHooks, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    secret = await new_session(db, "ned", receiver.url + "?token=tok-SECRET-123")
    receiver.script.extend([500, "hang"])
    receiver.mode = "gone"
    hooks = make_hooks(timeout=0.3, global_url=receiver.url, global_secret=GLOBAL_SECRET)
    caplog.set_level(logging.DEBUG, logger="wahttp.server.webhooks")
    hooks.start()
    await hooks.emit("ned", "message", {"text": "top-secret-body-text"})  # the Protocol's method

    async def finished() -> bool:
        rows = await outbox(db)
        return len(rows) == 2 and all(r["status"] != "pending" for r in rows)

    await eventually(finished)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "attempt 1" in text and "HTTP 410" in text
    for leak in (secret, GLOBAL_SECRET, "top-secret-body-text", "tok-SECRET-123", receiver.url):
        assert leak not in text


async def test_the_body_is_stable_across_storage(db: Database, make_hooks: MakeHooks) -> None:
    """The body rebuilt from the outbox row is the body of the event as emitted."""
    event = WebhookEvent("message", "s", {"b": [1, 2.5, None, "é"], "a": {"z": 1, "y": True}})
    hooks = make_hooks(global_url="http://127.0.0.1:9/x", global_secret=GLOBAL_SECRET)
    async with db.acquire() as conn:
        from wahttp.server.webhooks import enqueue

        targets = await hooks.targets(conn, "s")
        assert [t.kind for t in targets] == ["global"] and GLOBAL_SECRET not in repr(targets)
        assert len(await enqueue(conn, event, targets)) == 1
        assert await enqueue(conn, event, targets) == []  # same event, same URL: no-op
    job = (await hooks._claim(1))[0]
    rebuilt = encode_body(job.event_id, job.type, job.session_id, job.occurred_at, job.data)
    assert json.loads(rebuilt) == json.loads(event.body())


# -- routes ----------------------------------------------------------------------------------------


@pytest.fixture
async def hooks(make_hooks: MakeHooks) -> Webhooks:
    return make_hooks(max_attempts=1)


@pytest.fixture
async def api(db: Database, hooks: Webhooks) -> AsyncIterator[httpx.AsyncClient]:
    """The router on an app of its own, with a Services-like state (repo, webhooks)."""
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    app.state.services = SimpleNamespace(repo=SessionRepository(db), webhooks=hooks)
    app.state.auth = ApiAuth(None, None, enabled=False)  # keys are tested in test_api_auth.py
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_webhook_routes(
    db: Database, api: httpx.AsyncClient, hooks: Webhooks, receiver: Receiver
) -> None:
    await SessionRepository(db).create("olga")
    missing = await api.get("/sessions/ghost/webhook")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "session_not_found"
    resp = await api.put("/sessions/ghost/webhook", json={"url": "https://example.com/h"})
    assert resp.status_code == 404
    for bad in (
        {"url": "ftp://example.com/h"},
        {"url": "http://"},
        {"url": "nope"},
        {"url": "https://example.com/h", "secret": "short"},
        {"secret": "x" * 16},
        {"url": "https://example.com/h", "extra": 1},
    ):
        resp = await api.put("/sessions/olga/webhook", json=bad)
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json()["error"]["code"] == "invalid_request"

    shown = (await api.get("/sessions/olga/webhook")).json()
    assert shown["url"] is None and len(shown["secret"]) == 64
    put = await api.put("/sessions/olga/webhook", json={"url": receiver.url})
    assert put.status_code == 200
    assert put.json() == {"url": receiver.url, "secret": shown["secret"]}
    put = await api.put("/sessions/olga/webhook", json={"url": receiver.url, "secret": "s" * 20})
    assert put.json() == {"url": receiver.url, "secret": "s" * 20}
    assert (await api.get("/sessions/olga/webhook")).json() == put.json()
    row = await SessionRepository(db).get("olga")
    assert row is not None and row.webhook_url == receiver.url

    receiver.mode = "fail"
    hooks.start()
    await hooks.publish("olga", "message", {"id": "1"})

    async def dead() -> bool:
        return [d["status"] for d in await hooks.deliveries("olga")] == ["dead"]

    await eventually(dead)
    listed = await api.get("/sessions/olga/webhook/deliveries", params={"status": "dead"})
    assert listed.status_code == 200
    [delivery] = listed.json()
    assert {
        "id",
        "event_id",
        "type",
        "url",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "created_at",
        "delivered_at",
        "next_attempt_at",
        "target",
    } <= set(delivery)
    assert delivery["status"] == "dead" and delivery["last_status"] == 500
    assert delivery["url"] == receiver.url and delivery["type"] == "message"
    assert (await api.get("/sessions/olga/webhook/deliveries?status=delivered")).json() == []
    assert (await api.get("/sessions/olga/webhook/deliveries?status=bogus")).status_code == 400
    assert (await api.get("/sessions/olga/webhook/deliveries?limit=0")).status_code == 400
    assert (await api.get("/sessions/ghost/webhook/deliveries")).status_code == 404

    receiver.mode = "ok"
    retry = await api.post(f"/sessions/olga/webhook/deliveries/{delivery['id']}/retry")
    assert retry.status_code == 200 and retry.json()["status"] in ("pending", "delivered")
    await all_delivered(db, 1)
    again = await api.post(f"/sessions/olga/webhook/deliveries/{delivery['id']}/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_dead"
    unknown = await api.post("/sessions/olga/webhook/deliveries/999999/retry")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "delivery_not_found"
    await SessionRepository(db).create("pia")
    foreign = await api.post(f"/sessions/pia/webhook/deliveries/{delivery['id']}/retry")
    assert foreign.status_code == 404

    removed = await api.put("/sessions/olga/webhook", json={"url": None})
    assert removed.json() == {"url": None, "secret": "s" * 20}
    assert await hooks.publish("olga", "message", {"id": "2"}) is None
