"""App state from a snapshot blob through the REST API: a session paired to a phone that
already has contacts lists them in GET /sessions/{id}/contacts, its first sync having
downloaded the snapshot from the simulator's media host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servicetools import Service, running, service_settings, wait_status
from simtools import new_phone

from wahttp.sim.runner import SimHandle


@pytest.fixture
async def service(sim: SimHandle, database_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    async with running(service_settings(sim, database_url, tmp_path)) as svc:
        yield svc


async def test_existing_contacts_arrive_by_snapshot(
    service: Service, api: httpx.AsyncClient, admin: httpx.AsyncClient, sim: SimHandle
) -> None:
    number = await new_phone(admin)
    friends = [await new_phone(admin) for _ in range(2)]
    for i, friend in enumerate(friends):
        body = {"jid": friend, "name": f"Known {i}"}
        assert (await admin.post(f"/phones/{number}/contacts", json=body)).status_code == 200
    jid = f"{friends[0]}@s.whatsapp.net"
    settings = {"archive": True, "mute": -1}
    assert (await admin.post(f"/phones/{number}/chats/{jid}", json=settings)).status_code == 200
    assert (await api.post("/sessions", json={"id": "snap"})).status_code == 201
    code = (await api.post("/sessions/snap/pair-request", json={"number": number})).json()
    await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
    await wait_status(api, "snap", "open")

    async def contacts() -> dict[str, dict[str, Any]]:
        resp = await api.get("/sessions/snap/contacts")
        assert resp.status_code == 200, resp.text
        return {c["jid"]: c for c in resp.json()}

    async with asyncio.timeout(30):
        while True:
            rows = await contacts()
            if len(rows) == 2 and rows.get(jid, {}).get("archived"):
                break
            await asyncio.sleep(0.1)
    assert rows[jid] == {
        "jid": jid,
        "name": "Known 0",
        "archived": True,
        "pinned": False,
        "mutedUntil": -1,
    }
    assert rows[f"{friends[1]}@s.whatsapp.net"]["name"] == "Known 1"
    assert sim.server.media.served >= 2  # both collections' snapshots (again after a restart)
