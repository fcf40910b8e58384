"""Unmodified Baileys 7 against the simulator's calls and version check: it gets the call
offer a simulated phone places (its `call` event), its `rejectCall` reaches the phone, and
with a version older than the simulator's minimum it ends with statusCode 405."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from baileys_tools import Baileys, link_baileys_by_code
from simtools import new_phone

from wahttp.sim.runner import SimHandle

pytestmark = pytest.mark.interop


async def test_baileys_gets_the_call_offer_and_its_reject_reaches_the_phone(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    theirs = await new_phone(admin)
    caller = await new_phone(admin)
    auth = tmp_path / "baileys"
    await link_baileys_by_code(sim, admin, auth, theirs)
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        resp = await admin.post(f"/phones/{caller}/call", json={"to": theirs, "video": True})
        assert resp.status_code == 201
        call_id = resp.json()["id"]
        call = await baileys.next("call")
        assert call["id"] == call_id and call["status"] == "offer"
        assert call["from"] == f"{caller}@s.whatsapp.net"
        assert call["isVideo"] is True and call["isGroup"] is False
        await baileys.command(cmd="reject-call", id=call_id, **{"from": call["from"]})
        await baileys.next("call-rejected")  # rejectCall is a query: the simulator answered
        calls = (await admin.get(f"/phones/{caller}/calls")).json()
        assert calls[0]["status"] == "rejected"
        assert calls[0]["rejectedBy"].startswith(f"{theirs}:")
    finally:
        await baileys.stop()


async def test_baileys_with_an_outdated_version_gets_405(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Baileys 7.0.0-rc14 announces 2.3000.1043857760: one above it is the minimum.
    assert (await admin.put("/version", json={"version": "2.3000.1043857761"})).status_code == 200
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, tmp_path / "fresh")
    try:
        closed = await asyncio.wait_for(baileys.next("close"), 30)
        assert closed["code"] == 405
        assert baileys.of("qr") == []
    finally:
        await baileys.stop()
    assert (await admin.get("/version")).json()["refused"] >= 1
