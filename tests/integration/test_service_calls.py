"""Calls and the client version through the service: a call offer is a `call` webhook event
(through the outbox), WAHTTP_REJECT_CALLS rejects it, and a 405 at login says in the session
status which setting to change."""

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
    settings = service_settings(sim, database_url, tmp_path, WAHTTP_REJECT_CALLS=True)
    async with running(settings) as svc:
        yield svc


async def _open(api: httpx.AsyncClient, admin: httpx.AsyncClient, sid: str, hook: str) -> str:
    assert (await api.post("/sessions", json={"id": sid, "webhookUrl": hook})).status_code == 201
    number = await new_phone(admin)
    code = (await api.post(f"/sessions/{sid}/pair-request", json={"number": number})).json()
    await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
    await wait_status(api, sid, "open")
    return number


def _events(rx: Receiver, kind: str) -> list[dict[str, Any]]:
    return [r.json() for r in rx.delivered() if r.json()["type"] == kind]


async def test_call_offer_webhook_and_auto_reject(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    number = await _open(api, admin, "c", receiver.url)
    caller = await new_phone(admin)
    resp = await admin.post(f"/phones/{caller}/call", json={"to": number, "video": True})
    assert resp.status_code == 201
    call_id = resp.json()["id"]
    await receiver.wait_for(lambda: bool(_events(receiver, "call")))
    (event,) = _events(receiver, "call")
    assert event["session"] == "c"
    data = event["data"]
    assert data["id"] == call_id and data["from"] == f"{caller}@s.whatsapp.net"
    assert data["isVideo"] is True and data["isGroup"] is False and data["rejected"] is True
    assert isinstance(data["timestamp"], int) and data["timestamp"] > 0
    async with asyncio.timeout(10):
        while (await admin.get(f"/phones/{caller}/calls")).json()[0]["status"] != "rejected":
            await asyncio.sleep(0.05)


async def test_outdated_version_in_the_status(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, receiver: Receiver, sim: SimHandle
) -> None:
    await _open(api, admin, "v", receiver.url)
    assert (await admin.put("/version", json={"version": "2.3000.2000000000"})).status_code == 200
    await admin.post("/connections/drop-all")
    status = await wait_status(api, "v", "stopped")
    last = status["last_disconnect"]
    assert last["code"] == 405
    assert last["reason"] == (
        "client version outdated: set WAHTTP_WA_VERSION (currently 2.3000.1043857760) "
        "or WAHTTP_WA_VERSION=auto"
    )
