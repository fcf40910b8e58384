"""App state through the REST API: a contact the phone names shows in GET /sessions/{id}/contacts
and as `contactName` on the next inbound `message` webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hooktools import Receiver
from servicetools import Service, running, service_settings, wait_status
from simtools import new_phone

from wahttp.sim.runner import SimHandle


@pytest.fixture
async def service(sim: SimHandle, database_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    async with running(service_settings(sim, database_url, tmp_path)) as svc:
        yield svc


async def test_contact_name_in_contacts_and_on_message_events(
    service: Service, api: httpx.AsyncClient, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    assert (
        await api.post("/sessions", json={"id": "as", "webhookUrl": receiver.url})
    ).status_code == 201
    number = await new_phone(admin)
    code = (await api.post("/sessions/as/pair-request", json={"number": number})).json()
    await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
    await wait_status(api, "as", "open")
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"

    async def contacts() -> list[dict[str, Any]]:
        resp = await api.get("/sessions/as/contacts")
        assert resp.status_code == 200, resp.text
        rows: list[dict[str, Any]] = resp.json()
        return rows

    # The phone shares its app-state key after the link; a rename before it arrives would wait
    # for it, so keep renaming until the session has the name.
    async with asyncio.timeout(20):
        while not any(c["jid"] == jid and c["name"] == "Ada L" for c in await contacts()):
            await admin.post(f"/phones/{number}/contacts", json={"jid": friend, "name": "Ada L"})
            await asyncio.sleep(0.3)
    await admin.post(f"/phones/{number}/chats/{jid}", json={"archive": True, "mute": -1})
    async with asyncio.timeout(20):
        while not any(c["jid"] == jid and c["archived"] for c in await contacts()):
            await asyncio.sleep(0.05)
    row = next(c for c in await contacts() if c["jid"] == jid)
    assert row == {"jid": jid, "name": "Ada L", "archived": True, "pinned": False, "mutedUntil": -1}
    await admin.post(f"/phones/{friend}/messages", json={"to": number, "text": "hello"})

    def messages() -> list[dict[str, Any]]:
        return [r.json()["data"] for r in receiver.delivered() if r.json()["type"] == "message"]

    await receiver.wait_for(lambda: any(m["text"] == "hello" for m in messages()), timeout=20)
    got = next(m for m in messages() if m["text"] == "hello")
    assert got["contactName"] == "Ada L"
    assert got["pushName"] is not None
