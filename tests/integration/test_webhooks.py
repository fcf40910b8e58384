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
from hooktools import FakeResolver, Received, Receiver, eventually

from wahttp.server import errors
from wahttp.server.auth import ApiAuth, ApiKeyRepository
from wahttp.server.db import Database
from wahttp.server.outbound import OutboundPolicy
from wahttp.server.routes import sessions as session_routes
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
    from wahttp.server.webhooks import Outcome, Verdict

    await new_session(db, "jay", receiver.url)
    crashed = make_hooks(timeout=0.2, lease=0.8)
    event_id = await crashed.publish("jay", "message", {"id": "c"})
    claimed = await crashed.outbox.claim(10, crashed.lease)  # then "dies" undelivered
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
    await crashed.deliverer.record(claimed[0], Outcome(Verdict.RETRY, 500, "late", 0.0))
    again = (await outbox(db))[0]
    assert again["status"] == "delivered" and again["delivered_at"] == row["delivered_at"]


async def test_a_lease_lost_on_the_last_attempt_ends_dead(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    await new_session(db, "kim", receiver.url)
    crashed = make_hooks(timeout=0.1, lease=0.3, max_attempts=1)
    await crashed.publish("kim", "message", {"id": "k"})
    assert len(await crashed.outbox.claim(10, crashed.lease)) == 1
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
        listener = hooks.deliverer.listener
        return failures == 0 and listener is not None and listener.listening

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
    job = (await hooks.outbox.claim(1, hooks.lease))[0]
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
        {"url": "https://example.com/h", "secret": "nul-in-the-secret\u0000-0123"},
        {"url": "https://example.com/h", "secret": "\x07bell-in-the-secret-0123"},
        {"url": "https://example.com/h\u0000"},
        {"url": "https://example.com/h\x7f"},
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


# -- where webhooks may go (server/outbound.py) ----------------------------------------------------

PUBLIC = "93.184.215.14"  # a public address for fake DNS answers; never connected to
# The forms of loopback and the other internal ranges (ports as written).
BYPASSES = [
    "http://2130706433:8080/hook",
    "http://0x7f000001:8080/hook",
    "http://127.1:8080/hook",
    "http://017700000001:8080/hook",
    "http://[::ffff:127.0.0.1]:8080/hook",
    "http://0:8080/hook",
    "http://localhost:8080/hook",
    "http://loopback.test:8080/hook",  # a name that resolves to loopback
    "http://127\u30020\u30020\u30021:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://[::1]:8080/hook",
    "http://[fe80::1]/hook",
]
ANSWERS = {
    "localhost": ["127.0.0.1", "::1"],
    "loopback.test": ["127.0.0.1"],
    "hooks.example.com": [PUBLIC],
}


@pytest.fixture
async def strict_api(db: Database, make_hooks: MakeHooks) -> AsyncIterator[httpx.AsyncClient]:
    """The webhook and session routes over Webhooks with the default policy (no opt-in) and
    fake DNS answers."""
    hooks = make_hooks(policy=OutboundPolicy(), resolver=FakeResolver(ANSWERS))
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    app.include_router(session_routes.router)
    app.state.services = SimpleNamespace(repo=SessionRepository(db), webhooks=hooks)
    app.state.auth = ApiAuth(None, None, enabled=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_urls_set_through_the_api_may_not_reach_internal_addresses(
    db: Database, strict_api: httpx.AsyncClient
) -> None:
    await SessionRepository(db).create("nat")
    for url in BYPASSES:
        for method, path, body in (
            ("PUT", "/sessions/nat/webhook", {"url": url}),
            ("POST", "/sessions", {"id": "other", "webhookUrl": url}),
        ):
            resp = await strict_api.request(method, path, json=body)
            assert resp.status_code == 400, (url, method, resp.text)
            error = resp.json()["error"]
            assert error["code"] == "webhook_not_allowed", (url, error)
            assert error["message"].startswith("address not allowed"), error
    assert (await SessionRepository(db).get("nat")).webhook_url is None  # type: ignore[union-attr]
    assert await SessionRepository(db).get("other") is None
    # A public name is fine; one that does not resolve is refused with the reason.
    ok = await strict_api.put("/sessions/nat/webhook", json={"url": "https://hooks.example.com/h"})
    assert ok.status_code == 200, ok.text
    nowhere = await strict_api.put("/sessions/nat/webhook", json={"url": "https://nowhere.test/"})
    assert nowhere.status_code == 400 and "cannot resolve" in nowhere.json()["error"]["message"]


async def test_a_url_stored_before_the_policy_is_refused_at_delivery(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    """Checked again when delivering: dead at once, no connection, nothing about the port."""
    await new_session(db, "old", receiver.url)  # stored without the API's check
    hooks = make_hooks(
        policy=OutboundPolicy(), global_url=receiver.url + "?all", global_secret=GLOBAL_SECRET
    )
    hooks.start()
    await hooks.publish("old", "message", {"id": "m1"})
    # The operator's global URL may reach loopback; the session's (API-set) may not.
    await receiver.wait_requests(1)

    async def settled() -> bool:
        return all(r["status"] != "pending" for r in await outbox(db))

    await eventually(settled)
    rows = {r["target"]: r for r in await outbox(db)}
    assert rows["global"]["status"] == "delivered"
    refused = rows["session"]
    assert refused["status"] == "dead" and refused["attempts"] == 1
    assert refused["last_error"].startswith("address not allowed")
    assert refused["last_status"] is None
    assert str(receiver.port) not in refused["last_error"]
    assert len(receiver.requests) == 1 and receiver.requests[0].headers["x-wahttp-event"]
    await hooks.stop()

    # An operator deny list configured later applies to the global URL too, by address.
    denied = make_hooks(
        policy=OutboundPolicy.parse(None, "127.0.0.0/8"),
        global_url=receiver.url.replace("127.0.0.1", "2130706433"),
        global_secret=GLOBAL_SECRET,
    )
    denied.start()
    await denied.publish(None, "session.status", {"state": "open"})
    await eventually(settled)
    last = (await outbox(db))[-1]
    assert last["target"] == "global" and last["status"] == "dead"
    assert "WAHTTP_WEBHOOK_DENY" in last["last_error"]
    assert len(receiver.requests) == 1


async def test_a_dns_answer_that_changes_after_the_check_is_refused_at_delivery(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    resolver = FakeResolver({"rebind.test": [PUBLIC]})
    hooks = make_hooks(policy=OutboundPolicy(), resolver=resolver)
    url = f"http://rebind.test:{receiver.port}/hook"
    await hooks.check_target(url)  # what PUT .../webhook does: public now
    await new_session(db, "reb", url)
    resolver.answers["rebind.test"] = ["127.0.0.1"]  # then the name points at loopback
    hooks.start()
    await hooks.publish("reb", "message", {"id": "m1"})

    async def dead() -> bool:
        return [r["status"] for r in await outbox(db)] == ["dead"]

    await eventually(dead)
    [row] = await outbox(db)
    assert row["last_error"].startswith("address not allowed") and row["attempts"] == 1
    assert receiver.requests == []
    assert "rebind.test" in resolver.calls


async def test_session_keys_see_only_their_sessions_own_deliveries(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    admin_key = "admin-key-" + "a" * 30
    token_url = receiver.url + "?token=operator-token-123"
    hooks = make_hooks(max_attempts=1, global_url=token_url, global_secret=GLOBAL_SECRET)
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    app.state.services = SimpleNamespace(repo=SessionRepository(db), webhooks=hooks)
    keys = ApiKeyRepository(db)
    app.state.auth = ApiAuth(keys, admin_key)
    await new_session(db, "ten", receiver.url)
    made = await keys.create("ten")
    assert made is not None
    session_key = made[1]
    receiver.mode = "fail"
    hooks.start()
    await hooks.publish("ten", "message", {"id": "m1"})

    async def both_dead() -> bool:
        rows = await outbox(db)
        return len(rows) == 2 and all(r["status"] == "dead" for r in rows)

    await eventually(both_dead)
    ids = {r["target"]: r["id"] for r in await outbox(db)}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        tenant = {"X-Api-Key": session_key}
        listed = await client.get("/sessions/ten/webhook/deliveries", headers=tenant)
        assert listed.status_code == 200
        assert [d["target"] for d in listed.json()] == ["session"]
        assert "operator-token-123" not in listed.text
        foreign = await client.post(
            f"/sessions/ten/webhook/deliveries/{ids['global']}/retry", headers=tenant
        )
        assert foreign.status_code == 404
        assert foreign.json()["error"]["code"] == "delivery_not_found"
        own = await client.post(
            f"/sessions/ten/webhook/deliveries/{ids['session']}/retry", headers=tenant
        )
        assert own.status_code == 200 and own.json()["target"] == "session"
        # The admin sees both, and may re-queue the global one.
        admin = {"X-Api-Key": admin_key}
        everything = await client.get("/sessions/ten/webhook/deliveries", headers=admin)
        assert sorted(d["target"] for d in everything.json()) == ["global", "session"]
        again = await client.post(
            f"/sessions/ten/webhook/deliveries/{ids['global']}/retry", headers=admin
        )
        assert again.status_code == 200


async def test_a_hanging_endpoint_delays_only_its_own_events(
    db: Database, make_hooks: MakeHooks
) -> None:
    """Per-URL slots: a receiver that never answers holds at most `target_concurrency`
    deliveries; another session's event goes out while those still hang."""
    hanging, prompt = Receiver(), Receiver()
    await hanging.up()
    await prompt.up()
    try:
        hanging.mode = "hang"
        await new_session(db, "slow", hanging.url)
        await new_session(db, "fast", prompt.url)
        hooks = make_hooks(concurrency=8, target_concurrency=2, timeout=20.0)
        for i in range(12):
            await hooks.publish("slow", "message", {"n": i})
        hooks.start()
        await hanging.wait_requests(2)
        await hooks.publish("fast", "message", {"n": "first"})
        await prompt.wait_requests(1, timeout=15)
        # Ordering, not timing: the fast event was delivered while the slow endpoint's
        # attempts were all still hanging (none has an outcome yet), and the slow endpoint
        # never held more than its two slots.
        slow_rows = [r for r in await outbox(db) if r["session_id"] == "slow"]
        assert all(r["last_error"] is None and r["status"] == "pending" for r in slow_rows)
        assert len(hanging.requests) == 2
        assert sum(1 for j in hooks.deliverer.inflight.values() if j.url == hanging.url) == 2
    finally:
        await hanging.down()
        await prompt.down()


async def test_stored_event_data_is_sealed_with_the_key_ring(
    db: Database, make_hooks: MakeHooks, receiver: Receiver
) -> None:
    from wahttp.wa.auth.sealing import Sealer

    sealer = Sealer([("k1", bytes(range(32)))])
    secret = await new_session(db, "sea", receiver.url)
    clear = make_hooks()
    old_id = await clear.publish("sea", "message", {"text": "written-before-the-key"})
    hooks = make_hooks(sealer=sealer)
    new_id = await hooks.publish("sea", "message", {"text": "top-secret-text", "n": 1})
    async with db.acquire() as conn:
        stored = {
            str(r["event_id"]): r["payload"]
            for r in await conn.fetch(
                "SELECT event_id, payload::text AS payload FROM webhook_outbox"
            )
        }
    assert "top-secret-text" not in stored[str(new_id)]
    assert '"wahttp:sealed"' in stored[str(new_id)]
    assert "written-before-the-key" in stored[str(old_id)]  # clear rows from before stay
    hooks.start()
    await all_delivered(db, 2)
    bodies = {r.event_id: r for r in receiver.delivered()}
    for request in bodies.values():
        assert_signed(request, secret)
    assert bodies[str(new_id)].json()["data"] == {"text": "top-secret-text", "n": 1}
    assert bodies[str(old_id)].json()["data"] == {"text": "written-before-the-key"}
    listed = await hooks.deliveries("sea")
    assert {d["status"] for d in listed} == {"delivered"}
    await hooks.stop()

    # Without its key a sealed row cannot be opened: dead with the reason, not a crash.
    lost_id = await hooks.publish("sea", "message", {"text": "key-goes-missing"})
    keyless = make_hooks()
    keyless.start()

    async def dead() -> bool:
        return any(
            d["status"] == "dead" and d["event_id"] == lost_id
            for d in await keyless.deliveries("sea")
        )

    await eventually(dead)
    [row] = [d for d in await keyless.deliveries("sea") if d["event_id"] == lost_id]
    assert "no encryption key" in row["last_error"] and "key-goes-missing" not in row["last_error"]
