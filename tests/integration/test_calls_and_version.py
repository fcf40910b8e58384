"""Call offers and the client version against the simulator, which rings companions and
refuses outdated clients as the real server does (`<failure reason="405">`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from simtools import client_for, linked_client, new_phone

from wahttp.sim.runner import SimHandle
from wahttp.wa.client import CallOffer, Disconnected


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_outdated_version_is_refused_with_405_and_the_hint(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    linked = await linked_client(sim, admin)
    await linked.client.disconnect()
    resp = await admin.put("/version", json={"version": "2.3000.1043857761"})
    assert resp.status_code == 200 and resp.json()["min"] == "2.3000.1043857761"
    client, events = client_for(sim, linked.store)
    await client.connect()
    code, reason = await client.wait_closed()
    assert code == 405
    assert reason == (
        "client version outdated: set WAHTTP_WA_VERSION (currently 2.3000.1043857760) "
        "or WAHTTP_WA_VERSION=auto"
    )
    closed = await events.next(Disconnected)
    assert isinstance(closed, Disconnected) and closed.code == 405
    assert (await admin.get("/version")).json()["refused"] == 1
    # A current version gets in.
    client, events = client_for(sim, linked.store, version=(2, 3000, 1043857761))
    await client.connect()
    assert client.connected
    await client.disconnect()


async def test_bad_min_version_is_a_4xx(admin: httpx.AsyncClient) -> None:
    for body in ({"version": "2.3000"}, {"version": "x"}, {"version": 5}):
        resp = await admin.put("/version", json=body)
        assert resp.status_code == 422, resp.text
    assert (await admin.put("/version", json={})).json()["min"] is None


async def test_call_offer_is_an_event_and_acked(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    linked = await linked_client(sim, admin)
    caller = await new_phone(admin)
    resp = await admin.post(f"/phones/{caller}/call", json={"to": linked.number, "video": True})
    assert resp.status_code == 201, resp.text
    call_id = resp.json()["id"]
    offer = await linked.events.next(CallOffer)
    assert isinstance(offer, CallOffer)
    assert offer.id == call_id and offer.is_video and not offer.is_group
    assert offer.from_ == f"{caller}@s.whatsapp.net" and offer.timestamp > 0
    assert not offer.rejected
    # Acked: nothing stays pending for the device; not rejected.
    box = sim.server.router.mailbox((linked.number, int(linked.jid.split(":")[1].split("@")[0])))
    await _until(lambda: not box.pending)
    calls = (await admin.get(f"/phones/{caller}/calls")).json()
    assert [c["status"] for c in calls] == ["ringing"]
    await linked.client.disconnect()


async def test_reject_calls_setting_rejects_the_offer(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    linked = await linked_client(sim, admin)
    await linked.client.disconnect()
    client, events = client_for(sim, linked.store, reject_calls=True)
    await client.connect()
    caller = await new_phone(admin)
    resp = await admin.post(f"/phones/{caller}/call", json={"to": linked.number})
    offer = await events.next(CallOffer)
    assert isinstance(offer, CallOffer) and offer.rejected and not offer.is_video

    async def status() -> str:
        return str((await admin.get(f"/phones/{caller}/calls")).json()[0]["status"])

    async with asyncio.timeout(10):
        while await status() != "rejected":
            await asyncio.sleep(0.05)
    call = sim.server.network.calls[resp.json()["id"]]
    assert call.rejected_by == linked.jid
    await client.disconnect()


async def test_call_endpoint_bad_input_is_4xx(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    caller = await new_phone(admin)
    assert (await admin.post(f"/phones/{caller}/call", json={})).status_code == 422
    resp = await admin.post(f"/phones/{caller}/call", json={"to": caller})
    assert resp.status_code == 404
    resp = await admin.post("/phones/15550000000/call", json={"to": caller})
    assert resp.status_code == 404
    resp = await admin.post(f"/phones/{caller}/call", json={"to": "12345", "video": "maybe"})
    assert resp.status_code == 422
