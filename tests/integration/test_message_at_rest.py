"""Sent message texts at rest and their retention: with a key `messages.payload` holds a sealed
envelope bound to its session and message id (clear rows from before still read, rotate-key
seals them), a retry receipt is still answered from the sealed copy, and the pruner deletes
old messages and finished webhook deliveries, and nothing a retry or a delivery still needs."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from servicetools import running, service_settings, wait_status
from simtools import linked_client, new_phone

from wahttp.server.auth_cli import run_auth_command
from wahttp.server.db import Database
from wahttp.server.messages import MessageRepository, SessionSentStore
from wahttp.server.retention import RETENTION_LOCK_KEY, Pruned, Retention
from wahttp.server.settings import Settings
from wahttp.server.store import SessionRepository
from wahttp.server.webhooks import Webhooks
from wahttp.sim.runner import SimHandle
from wahttp.wa.auth.sealing import Sealer, SealError
from wahttp.wa.client import MessageReceived, UndecryptableMessage
from wahttp.wa.client.messages import text_message
from wahttp.wa.jid import Jid

KEY_A = os.urandom(32)
KEY_B = os.urandom(32)
A = Sealer([("key-a", KEY_A)])
B_THEN_A = Sealer([("key-b", KEY_B), ("key-a", KEY_A)])
TEXT = "the secret lunch plans 7f3a"
CHAT = "15550002222@s.whatsapp.net"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def raw_payloads(db: Database) -> dict[str, bytes]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT id, payload FROM messages WHERE payload IS NOT NULL")
    return {r["id"]: bytes(r["payload"]) for r in rows}


async def test_sent_payloads_are_sealed_bound_to_their_row(db: Database) -> None:
    await SessionRepository(db).create("alice")
    await SessionRepository(db).create("bob")
    repo = MessageRepository(db, A)
    payload = text_message(TEXT).SerializeToString()
    await repo.record_outgoing("alice", "M1", CHAT, payload)
    await repo.save_sent("alice", "M2", CHAT, payload)
    raw = await raw_payloads(db)
    for stored in raw.values():
        assert TEXT.encode() not in stored
        assert json.loads(stored)["kid"] == "key-a"
    assert await repo.load_sent("alice", "M1") == (CHAT, payload)
    assert await SessionSentStore(repo, "alice").load_sent("M2") == (CHAT, payload)

    # Moved to another message or another session, a sealed copy does not open.
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO messages (session_id, id, chat, from_me, status, payload)"
            " VALUES ('alice', 'M3', $1, true, 'sent', $2), ('bob', 'M1', $1, true, 'sent', $2)",
            CHAT,
            raw["M1"],
        )
    for session_id, message_id in (("alice", "M3"), ("bob", "M1")):
        with pytest.raises(SealError, match="altered or moved") as caught:
            await repo.load_sent(session_id, message_id)
        assert TEXT not in str(caught.value) and b64(KEY_A) not in str(caught.value)
    with pytest.raises(SealError, match="no encryption key is configured"):
        await MessageRepository(db).load_sent("alice", "M1")


async def test_clear_payloads_still_read_and_rotate_key_seals_them(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = await Database.connect(database_url)
    try:
        await db.migrate()
        await SessionRepository(db).create("old")
        payload = text_message(TEXT).SerializeToString()
        clear = MessageRepository(db)  # written before a key was set
        await clear.record_outgoing("old", "C1", CHAT, payload)
        await MessageRepository(db, A).record_outgoing("old", "A1", CHAT, payload)
        assert (await raw_payloads(db))["C1"] == payload
        assert await MessageRepository(db, A).load_sent("old", "C1") == (CHAT, payload)

        values: dict[str, Any] = {
            "DATABASE_URL": database_url,
            "WAHTTP_DATA_DIR": tmp_path / "data",
            "WAHTTP_AUTH_DIR": tmp_path / "auth_sessions",
            "WAHTTP_ENCRYPTION_KEY": f"key-b:{b64(KEY_B)},key-a:{b64(KEY_A)}",
        }
        settings = Settings(_env_file=None, **values)
        capsys.readouterr()
        assert await run_auth_command(argparse.Namespace(auth_command="rotate-key"), settings) == 0
        out = capsys.readouterr().out
        assert (
            "session 'old': 2 sent message copies, 2 re-sealed (1 were in clear,"
            " 1 were under key id 'key-a')" in out
        )
        raw = await raw_payloads(db)
        assert {json.loads(v)["kid"] for v in raw.values()} == {"key-b"}
        assert all(TEXT.encode() not in v for v in raw.values())
        assert await MessageRepository(db, B_THEN_A).load_sent("old", "C1") == (CHAT, payload)
        again = await MessageRepository(db, B_THEN_A).reseal_payloads("old")
        assert (again.values, again.total_resealed) == (2, 0)
    finally:
        await db.close()


async def test_retry_receipt_answered_from_the_sealed_copy(
    sim: SimHandle, admin: httpx.AsyncClient, db: Database
) -> None:
    """As test_crash_safety's retry test, with the service's sealed sent store."""
    a = await linked_client(sim, admin)
    b = await linked_client(sim, admin)
    await SessionRepository(db).create("a")
    a.client.sent_store = SessionSentStore(MessageRepository(db, A), "a")
    await a.client.send_text(Jid(b.number, "s.whatsapp.net"), "first")
    await b.events.next(MessageReceived)
    await b.client.send_text(Jid(a.number, "s.whatsapp.net"), "reply")
    await a.events.next(MessageReceived)
    sessions = (await b.store.all_keys()).get("session", {})
    await b.store.set({"session": dict.fromkeys(sessions)})  # b lost its session: it will retry
    await b.client.disconnect()
    sent = await a.client.send_text(Jid(b.number, "s.whatsapp.net"), TEXT)
    raw = await raw_payloads(db)
    assert sent.id in raw and TEXT.encode() not in raw[sent.id]
    a.client.recent_sent.clear()  # as after a restart: only the sealed copy is left
    await b.reconnect(sim)
    failed = await b.events.next(UndecryptableMessage)
    assert isinstance(failed, UndecryptableMessage) and failed.id == sent.id
    recovered = await b.events.next(MessageReceived)
    assert isinstance(recovered, MessageReceived) and recovered.text == TEXT
    await a.client.disconnect()
    await b.client.disconnect()


async def test_service_seals_what_it_sends(
    sim: SimHandle, admin: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    settings = service_settings(
        sim, database_url, tmp_path, WAHTTP_ENCRYPTION_KEY=f"key-a:{b64(KEY_A)}"
    )
    async with running(settings) as service, service.http() as api:
        assert (await api.post("/sessions", json={"id": "enc"})).status_code == 201
        number = await new_phone(admin)
        code = (await api.post("/sessions/enc/pair-request", json={"number": number})).json()
        await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
        await wait_status(api, "enc", "open")
        friend = await new_phone(admin)
        resp = await api.post("/sessions/enc/send-message", json={"to": friend, "message": TEXT})
        assert resp.status_code == 200, resp.text
        message_id = resp.json()["messageId"]
        status = await api.get(f"/sessions/enc/messages/{message_id}")
        assert status.status_code == 200
    db = await Database.connect(database_url)
    try:
        raw = await raw_payloads(db)
        async with db.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)
    finally:
        await db.close()
    assert row is not None and TEXT not in repr(dict(row))
    assert json.loads(raw[message_id])["kid"] == "key-a"


# --- retention ------------------------------------------------------------------------------


async def _message(db: Database, message_id: str, created_days: float, updated_days: float) -> None:
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO messages (session_id, id, chat, from_me, status, payload, created_at,"
            " updated_at) VALUES ('s', $1, $2, true, 'delivered', $3,"
            " now() - make_interval(secs => $4::float8),"
            " now() - make_interval(secs => $5::float8))",
            message_id,
            CHAT,
            b"x",
            created_days * 86400,
            updated_days * 86400,
        )


async def _delivery(db: Database, name: str, status: str, days: float) -> None:
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO webhook_outbox (event_id, event_type, session_id, occurred_at, payload,"
            " target, url, status, created_at) VALUES (gen_random_uuid(), 'message', 's', now(),"
            " $1::text::jsonb, 'session', 'https://example.com/hook', $2,"
            " now() - make_interval(secs => $3::float8))",
            json.dumps({"name": name}),
            status,
            days * 86400,
        )


async def _left(db: Database) -> tuple[set[str], set[str]]:
    async with db.acquire() as conn:
        messages = {r["id"] for r in await conn.fetch("SELECT id FROM messages")}
        deliveries = {
            r["n"] for r in await conn.fetch("SELECT payload->>'name' AS n FROM webhook_outbox")
        }
    return messages, deliveries


async def test_retention_prunes_old_messages_and_finished_deliveries(db: Database) -> None:
    await SessionRepository(db).create("s")
    for i in range(5):
        await _message(db, f"old{i}", 31, 31)  # past retention: go (in batches of 2)
    await _message(db, "recent", 29, 29)
    await _message(db, "touched", 40, 0.1)  # a receipt just came: a retry may follow
    await _delivery(db, "delivered-old", "delivered", 8)
    await _delivery(db, "dead-old", "dead", 8)
    await _delivery(db, "dead-older", "dead", 9)  # 3 finished old rows: two batches of 2
    await _delivery(db, "pending-old", "pending", 8)  # never delivered: never pruned
    await _delivery(db, "delivered-new", "delivered", 6)
    retention = Retention(db, Webhooks(db), message_days=30, webhook_days=7, batch=2)

    # Another worker prunes right now: this one skips its turn and deletes nothing.
    async with db.acquire() as other:
        await other.execute("SELECT pg_advisory_lock($1)", RETENTION_LOCK_KEY)
        assert await retention.prune_once() is None
        await other.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_KEY)
    assert len((await _left(db))[0]) == 7

    pruned = await retention.prune_once()
    assert pruned is not None and (pruned.messages, pruned.webhook_deliveries) == (5, 3)
    assert await _left(db) == ({"recent", "touched"}, {"pending-old", "delivered-new"})
    again = await retention.prune_once()  # idempotent
    assert again is not None and (again.messages, again.webhook_deliveries) == (0, 0)

    # 0 keeps forever.
    await _message(db, "ancient", 3650, 3650)
    await _delivery(db, "ancient", "delivered", 3650)
    forever = Retention(db, Webhooks(db), message_days=0, webhook_days=0)
    assert not forever.enabled
    assert await forever.prune_once() == Pruned(0, 0)
    assert await _left(db) == (
        {"recent", "touched", "ancient"},
        {"pending-old", "delivered-new", "ancient"},
    )


async def test_the_service_runs_the_pruner(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    settings = service_settings(sim, database_url, tmp_path, WAHTTP_RETENTION_INTERVAL=0.2)
    assert (settings.message_retention_days, settings.webhook_retention_days) == (30, 7)
    async with running(settings) as service, service.http() as api:
        assert (await api.post("/sessions", json={"id": "s"})).status_code == 201
        db = await Database.connect(database_url)
        try:
            await _message(db, "old", 31, 31)
            await _message(db, "new", 1, 1)
            await _delivery(db, "old", "delivered", 8)
            for _ in range(100):
                if await _left(db) == ({"new"}, set()):
                    break
                await asyncio.sleep(0.1)
            assert await _left(db) == ({"new"}, set())
        finally:
            await db.close()
