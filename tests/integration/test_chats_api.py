"""GET /sessions/{id}/chats: the session's chats from its message records, newest first, with
names from the phone's app state (else push names), unread counts that a read receipt of the
session or the phone marking the chat read resets, app-state flags, paging, and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from servicetools import Service, wait_status
from simtools import new_phone

SID = "chats"


async def _open(api: httpx.AsyncClient, admin: httpx.AsyncClient, session_id: str) -> str:
    assert (await api.post("/sessions", json={"id": session_id})).status_code == 201
    number = await new_phone(admin)
    code = (await api.post(f"/sessions/{session_id}/pair-request", json={"number": number})).json()
    await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
    await wait_status(api, session_id, "open")
    return number


async def _chats(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    resp = await api.get(f"/sessions/{SID}/chats", params=params)
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()
    return rows


async def _until(
    api: httpx.AsyncClient, check: Callable[[dict[str, dict[str, Any]]], bool]
) -> dict[str, dict[str, Any]]:
    """Poll the chat list (by JID) until `check` holds."""
    by_jid: dict[str, dict[str, Any]] = {}
    try:
        async with asyncio.timeout(20):
            while True:
                by_jid = {c["jid"]: c for c in await _chats(api)}
                if check(by_jid):
                    return by_jid
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"chat list never got there: {by_jid}") from None


async def _phone_says(admin: httpx.AsyncClient, phone: str, to: str, text: str) -> str:
    resp = await admin.post(f"/phones/{phone}/messages", json={"to": to, "text": text})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _jid(number: str) -> str:
    return f"{number}@s.whatsapp.net"


async def test_chats_order_names_unread_flags_and_pages(
    service: Service, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    number = await _open(api, admin, SID)
    assert await _chats(api) == []
    ada, bob, cy = [await new_phone(admin) for _ in range(3)]
    a, b, c = _jid(ada), _jid(bob), _jid(cy)
    # Messages one after the other (each recorded before the next), so the order is known.
    await _phone_says(admin, ada, number, "one")
    await _phone_says(admin, ada, number, "two")
    await _until(api, lambda m: m.get(a, {}).get("unread") == 2)
    bob_msg = await _phone_says(admin, bob, number, "hey")
    await _until(api, lambda m: b in m)
    sent = await api.post(f"/sessions/{SID}/send-message", json={"to": cy, "message": "hi"})
    assert sent.status_code == 200, sent.text
    listed = await _until(api, lambda m: c in m)
    rows = await _chats(api)
    assert [r["jid"] for r in rows] == [c, b, a]  # newest last message first
    assert rows[0]["lastMessageAt"] >= rows[1]["lastMessageAt"] >= rows[2]["lastMessageAt"]
    assert {j: r["unread"] for j, r in listed.items()} == {a: 2, b: 1, c: 0}
    ada_push = (await admin.get(f"/phones/{ada}")).json()["push_name"]
    assert listed[a]["name"] == listed[a]["pushName"] == ada_push
    assert listed[c]["name"] is None and listed[c]["pushName"] is None  # we wrote, it never did
    assert set(listed[b]) == {
        "jid",
        "name",
        "lastMessageAt",
        "unread",
        "pushName",
        "archived",
        "pinned",
        "mutedUntil",
        "markedUnread",
    }

    # The phone names Ada in its address book (app state): her chat shows that name.
    await admin.post(f"/phones/{number}/contacts", json={"jid": ada, "name": "Ada L"})
    listed = await _until(api, lambda m: m[a]["name"] == "Ada L")
    assert listed[a]["pushName"] == ada_push and listed[a]["unread"] == 2
    # The phone reads Ada's chat (markChatAsRead): nothing unread until she writes again.
    await admin.post(f"/phones/{number}/chats/{a}", json={"read": True})
    await _until(api, lambda m: m[a]["unread"] == 0)
    await _phone_says(admin, ada, number, "three")
    listed = await _until(api, lambda m: m[a]["unread"] == 1)
    assert [r["jid"] for r in await _chats(api)] == [a, c, b]
    # This session sends a read receipt for Bob's message: his chat has nothing unread.
    read = await api.post(f"/sessions/{SID}/messages/{bob_msg}/read")
    assert read.status_code == 200, read.text
    assert (await _chats(api))[2] == {**listed[b], "unread": 0}
    # Chat flags from the app state; marking a chat unread on the phone shows too.
    await admin.post(f"/phones/{number}/chats/{b}", json={"archive": True, "pin": True, "mute": -1})
    await admin.post(f"/phones/{number}/chats/{c}", json={"read": False})
    listed = await _until(api, lambda m: m[b]["archived"] and m[c]["markedUnread"])
    assert listed[b]["pinned"] is True and listed[b]["mutedUntil"] == -1
    assert listed[a]["archived"] is False and listed[a]["markedUnread"] is False
    # Pages: limit and offset over the same order.
    assert [r["jid"] for r in await _chats(api, limit=2)] == [a, c]
    assert [r["jid"] for r in await _chats(api, limit=2, offset=2)] == [b]
    assert await _chats(api, limit=1000, offset=3) == []


async def test_chats_errors_and_session_keys(
    service: Service, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    missing = await api.get("/sessions/ghost/chats")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "session_not_found"
    for session_id in ("ka", "kb"):
        assert (await api.post("/sessions", json={"id": session_id})).status_code == 201
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"limit": -1}, {"offset": -1}):
        resp = await api.get("/sessions/ka/chats", params=bad)
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json()["error"]["code"] == "invalid_request"
    assert (await api.get("/sessions/ka/chats", params={"limit": 1000})).json() == []
    # A session's key reads its own chat list and no other.
    created = await api.post("/keys", json={"session": "ka"})
    assert created.status_code == 201, created.text
    async with service.http(created.json()["key"]) as as_a:
        assert (await as_a.get("/sessions/ka/chats")).status_code == 200
        other = await as_a.get("/sessions/kb/chats")
        assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
        assert (await as_a.get("/sessions/ghost/chats")).status_code == 403
