"""Messaging through the REST API: send, receive, receipts as message.ack webhooks and message
status, bad input, and at-least-once webhooks across a receiver outage and a service restart."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hooktools import Receiver
from servicetools import Service, running, service_settings, wait_status
from simtools import new_phone

from wahttp.server.db import Database
from wahttp.server.store import PostgresAuthStore
from wahttp.server.webhooks import verify_signature
from wahttp.sim.runner import SimHandle
from wahttp.wa.auth.multifile import read_folder

# The acceptance asks for a receiver that is down "for a minute"; CI may shorten it.
OUTAGE_SECONDS = float(os.environ.get("WAHTTP_TEST_OUTAGE_SECONDS", "60"))


@pytest.fixture
async def service(sim: SimHandle, database_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    settings = service_settings(
        sim,
        database_url,
        tmp_path,
        # Fast retries that still outlast a minute's outage (about 30 tries, 2 s apart at most).
        WAHTTP_WEBHOOK_BACKOFF_BASE=0.2,
        WAHTTP_WEBHOOK_BACKOFF_MAX=2,
        WAHTTP_WEBHOOK_MAX_ATTEMPTS=60,
    )
    async with running(settings) as svc:
        yield svc


async def open_session(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, session_id: str, hook: str | None = None
) -> str:
    body: dict[str, Any] = {"id": session_id}
    if hook:
        body["webhookUrl"] = hook
    assert (await api.post("/sessions", json=body)).status_code == 201
    number = await new_phone(admin)
    code = (await api.post(f"/sessions/{session_id}/pair-request", json={"number": number})).json()
    await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
    await wait_status(api, session_id, "open")
    return number


def events(rx: Receiver, kind: str) -> list[dict[str, Any]]:
    return [r.json() for r in rx.delivered() if r.json()["type"] == kind]


def acks(rx: Receiver, message_id: str) -> list[str]:
    return [e["data"]["status"] for e in events(rx, "message.ack") if e["data"]["id"] == message_id]


async def test_send_to_a_phone_reports_sent_delivered_read(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await open_session(api, admin, "a", receiver.url)
    friend = await new_phone(admin)
    resp = await api.post("/sessions/a/send-message", json={"to": f"+{friend}", "message": "hi"})
    assert resp.status_code == 200, resp.text
    message_id = resp.json()["messageId"]
    await receiver.wait_for(lambda: "delivered" in acks(receiver, message_id))
    assert (await admin.post(f"/phones/{friend}/messages/{message_id}/read")).status_code == 200
    await receiver.wait_for(lambda: "read" in acks(receiver, message_id))
    assert acks(receiver, message_id) == ["sent", "delivered", "read"]
    status = (await api.get(f"/sessions/a/messages/{message_id}")).json()
    assert status["status"] == "read" and status["from_me"] is True
    assert status["sent_at"] and status["delivered_at"] and status["read_at"]
    assert status["chat"] == f"{friend}@s.whatsapp.net"
    states = [e["data"]["state"] for e in events(receiver, "session.status")]
    assert states[-1] == "open" and "awaiting_pairing" in states
    inbox = (await admin.get(f"/phones/{friend}/messages")).json()["received"]
    assert [m["text"] for m in inbox] == ["hi"]


async def test_two_sessions_talk_and_read_each_other(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    number_a = await open_session(api, admin, "a", receiver.url)
    number_b = await open_session(api, admin, "b", receiver.url)
    sent = await api.post("/sessions/a/send-message", json={"to": number_b, "message": "to b"})
    message_id = sent.json()["messageId"]

    def b_got_it() -> bool:
        return any(
            e["session"] == "b" and e["data"]["id"] == message_id
            for e in events(receiver, "message")
        )

    await receiver.wait_for(b_got_it)
    received = next(e for e in events(receiver, "message") if e["data"]["id"] == message_id)
    assert (
        received["data"]["text"] == "to b"
        and received["data"]["chat"] == f"{number_a}@s.whatsapp.net"
    )
    assert received["data"]["fromMe"] is False and received["data"]["type"] == "text"
    assert (await api.post(f"/sessions/b/messages/{message_id}/read")).status_code == 200
    await receiver.wait_for(lambda: "read" in acks(receiver, message_id))
    assert (await api.get(f"/sessions/a/messages/{message_id}")).json()["status"] == "read"
    # And back, addressed by JID this time.
    back = await api.post(
        "/sessions/b/send-message", json={"to": f"{number_a}@s.whatsapp.net", "message": "to a"}
    )
    assert back.status_code == 200
    await receiver.wait_for(
        lambda: any(e["data"]["text"] == "to a" for e in events(receiver, "message"))
    )


async def test_send_message_bad_input(api: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    assert (await api.post("/sessions", json={"id": "idle"})).status_code == 201
    resp = await api.post(
        "/sessions/idle/send-message", json={"to": "+15551234567", "message": "x"}
    )
    assert resp.status_code == 409 and resp.json()["error"]["state"] != "open"
    await open_session(api, admin, "ok")
    cases = [
        ({"to": "not a number", "message": "x"}, 400),
        ({"to": "123@g.us", "message": "x"}, 400),
        ({"to": "+15551234567", "message": ""}, 400),
        ({"to": "+15551234567", "message": "   "}, 400),
        ({"to": "+15551234567"}, 400),
        ({"to": "+15551234567", "message": "x" * 65537}, 413),
    ]
    for body, status in cases:
        resp = await api.post("/sessions/ok/send-message", json=body)
        assert resp.status_code == status, (body, resp.text)
        assert resp.json()["error"]["message"]
    resp = await api.post(
        "/sessions/nobody/send-message", json={"to": "+15551234567", "message": "x"}
    )
    assert resp.status_code == 404
    assert (await api.get("/sessions/ok/messages/nope")).status_code == 404
    assert (await api.post("/sessions/ok/messages/nope/read")).status_code == 404
    resp = await api.put("/sessions/ok/webhook", json={"url": "ftp://example.test/x"})
    assert resp.status_code == 400


async def test_webhook_outage_and_restart_lose_nothing(
    service: Service,
    api: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    number = await open_session(api, admin, "w", receiver.url)
    secret = (await api.get("/sessions/w/webhook")).json()["secret"]
    friend = await new_phone(admin)
    await receiver.down()
    started = time.monotonic()
    texts = [f"while down {i}" for i in range(10)]
    for text in texts[:5]:
        await admin.post(f"/phones/{friend}/messages", json={"to": number, "text": text})

    async def pending() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (
            await api.get("/sessions/w/webhook/deliveries", params={"status": "pending"})
        ).json()
        return rows

    async with asyncio.timeout(20):
        while len([d for d in await pending() if d["type"] == "message"]) < 5:
            await asyncio.sleep(0.05)
    await service.restart()  # in the middle of the outage
    await wait_status(api, "w", "open")
    for text in texts[5:]:
        await admin.post(f"/phones/{friend}/messages", json={"to": number, "text": text})
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
    await receiver.up()

    def arrived() -> list[str]:
        return [e["data"]["text"] for e in events(receiver, "message")]

    await receiver.wait_for(lambda: len(arrived()) >= 10, timeout=60)
    assert sorted(arrived()) == sorted(texts)
    counts = receiver.delivered_counts()
    assert all(n == 1 for n in counts.values()), counts  # none twice
    for request in receiver.delivered():
        assert verify_signature(
            secret,
            request.headers["x-wahttp-timestamp"],
            request.body,
            request.headers["x-wahttp-signature"],
        )
    delivered = (
        await api.get(
            "/sessions/w/webhook/deliveries", params={"status": "delivered", "limit": 1000}
        )
    ).json()
    message_rows = [d for d in delivered if d["type"] == "message"]
    assert len(message_rows) == 10 and len({d["event_id"] for d in message_rows}) == 10
    assert all(d["attempts"] >= 1 for d in message_rows)


async def test_webhook_allow_and_deny_lists(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    svc = Service(
        service_settings(
            sim,
            database_url,
            tmp_path,
            WAHTTP_WEBHOOK_ALLOW="127.0.0.1, *.example.com",
            WAHTTP_WEBHOOK_DENY="blocked.example.com",
        )
    )
    await svc.start()
    try:
        async with svc.http() as api:
            bad = await api.post("/sessions", json={"id": "x", "webhookUrl": "https://evil.test/h"})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "webhook_not_allowed"
            assert (await api.get("/sessions")).json() == []  # nothing was created
            ok = await api.post("/sessions", json={"id": "y", "webhookUrl": "http://127.0.0.1:1/h"})
            assert ok.status_code == 201
            denied = await api.put(
                "/sessions/y/webhook", json={"url": "https://blocked.example.com/h"}
            )
            assert denied.status_code == 400 and "denied" in denied.json()["error"]["message"]
            allowed = await api.put(
                "/sessions/y/webhook", json={"url": "https://hooks.example.com/h"}
            )
            assert allowed.status_code == 200
    finally:
        await svc.stop()


async def test_the_auth_folder_matches_the_database_after_a_stop(
    service: Service,
    api: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    """The folder mirror writes behind; a graceful stop writes out whatever is still queued."""
    number = await open_session(api, admin, "m", receiver.url)
    friend = await new_phone(admin)
    for i in range(5):
        await admin.post(f"/phones/{friend}/messages", json={"to": number, "text": f"in {i}"})
        resp = await api.post(
            "/sessions/m/send-message", json={"to": f"+{friend}", "message": f"out {i}"}
        )
        assert resp.status_code == 200, resp.text

    def inbound() -> int:
        return sum(1 for r in receiver.delivered() if r.json()["type"] == "message")

    await receiver.wait_for(lambda: inbound() >= 5, timeout=20)
    await service.stop()

    folder = read_folder(service.settings.auth_dir / "m")
    assert service.settings.database_url
    db = await Database.connect(service.settings.database_url)
    try:
        store = PostgresAuthStore(db, "m")
        creds = await store.load_creds()
        assert creds is not None and folder.creds.to_json() == creds.to_json()
        assert folder.keys == await store.all_keys()
    finally:
        await db.close()
    assert folder.keys["session"] and len(folder.keys["pre-key"]) > 10


async def test_a_send_the_server_refuses_is_failed_with_its_code_never_sent(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    # A stranger (no privacy token issued to us) with AB prop 10518 on: the ack says 463.
    await open_session(api, admin, "a", receiver.url)
    stranger = (await admin.post("/phones", json={"trusting": False})).json()["number"]
    resp = await api.post("/sessions/a/send-message", json={"to": f"+{stranger}", "message": "hi"})
    assert resp.status_code == 502, resp.text
    body = resp.json()["error"]
    assert body["code"] == "send_failed" and body["ack"]["code"] == 463
    message_id = body["messageId"]
    status = (await api.get(f"/sessions/a/messages/{message_id}")).json()
    assert status["status"] == "failed" and status["sent_at"] is None
    assert status["error"]["code"] == 463 and "privacy token" in status["error"]["reason"]
    await receiver.wait_for(lambda: "failed" in acks(receiver, message_id))
    assert acks(receiver, message_id) == ["failed"]
    failed = next(e for e in events(receiver, "message.ack") if e["data"]["id"] == message_id)
    assert failed["data"]["error"] == status["error"]
    # A delivered message has no error.
    friend = await new_phone(admin)
    ok = await api.post("/sessions/a/send-message", json={"to": f"+{friend}", "message": "hi"})
    assert ok.status_code == 200
    assert (await api.get(f"/sessions/a/messages/{ok.json()['messageId']}")).json()["error"] is None
