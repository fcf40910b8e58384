"""Account and contact notifications from the simulator, as the real server sends them:
account_sync (our device list, our picture), picture, identity change (sessions dropped, our
privacy token re-issued), and `<ib><dirty>` / `<ib><offline_preview>` before a backlog."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from simtools import client_for, linked_client, new_phone, scan

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import ContactPicture, MessageReceived, QRCode, tctoken
from wahttp.wa.jid import Jid


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def _link_another(sim: SimHandle, admin: httpx.AsyncClient, number: str) -> int:
    """Link a second companion to the phone `number`; returns its device id."""
    client, events = client_for(sim, MemoryAuthStore())
    runner = asyncio.create_task(client.run())
    qr = await events.next(QRCode)
    assert isinstance(qr, QRCode)
    device = await scan(admin, number, qr.qr)
    await client.disconnect()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    return int(str(device["jid"]).split(":")[1].split("@")[0])


async def test_account_sync_refreshes_our_device_list(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    linked = await linked_client(sim, admin)
    me = linked.client.me
    linked.client.device_cache[me.user] = (0.0, [0, me.device or 0])  # stale, from before
    other = await _link_another(sim, admin, linked.number)
    await _until(lambda: other in linked.client.device_cache.get(me.user, (0, []))[1])
    assert linked.client.device_cache[me.user][1] == sorted({0, me.device or 0, other})
    stored = await linked.client.signal.device_lists([me.user])
    assert other in stored[me.user]
    await linked.client.disconnect()


async def test_reconnect_with_a_backlog_gets_dirty_and_offline_preview(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    linked = await linked_client(sim, admin)
    await linked.client.disconnect()
    key = (linked.number, linked.client.me.device or 0)
    # A companion linked while we were away: an account_sync waits for us, and a message.
    await _link_another(sim, admin, linked.number)
    assert key in sim.server.network.dirty
    await admin.post(f"/phones/{linked.number}/messages", json={"to": linked.number, "text": "x"})
    cleaned = sim.server.network.cleaned
    await linked.reconnect(sim)
    await _until(lambda: sim.server.network.cleaned == cleaned + 1)
    assert key not in sim.server.network.dirty
    conn = sim.server.connection(linked.jid)
    assert conn is not None
    await _until(lambda: conn.offline_batches == 1)  # we answered the preview
    await linked.client.disconnect()


async def test_picture_change_is_an_event(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    linked = await linked_client(sim, admin)
    friend = await new_phone(admin)
    await admin.post(f"/phones/{friend}/messages", json={"to": linked.number, "text": "hi"})
    await linked.events.next(MessageReceived)
    resp = await admin.post(f"/phones/{friend}/picture", json={})
    assert resp.status_code == 200 and resp.json()["notified"] == 1
    event = await linked.events.next(ContactPicture)
    assert isinstance(event, ContactPicture)
    assert event.jid == f"{friend}@s.whatsapp.net" and event.author == event.jid
    assert event.picture_id == resp.json()["pictureId"] and not event.removed
    await admin.post(f"/phones/{friend}/picture", json={"remove": True})
    event = await linked.events.next(ContactPicture)
    assert isinstance(event, ContactPicture) and event.removed and event.picture_id is None
    # Our own phone's picture: account_sync <picture/>, an event for our own JID.
    await admin.post(f"/phones/{linked.number}/picture", json={})
    event = await linked.events.next(ContactPicture)
    assert isinstance(event, ContactPicture) and event.jid == f"{linked.number}@s.whatsapp.net"
    assert (await admin.post(f"/phones/{friend}/picture", json={"remove": 3})).status_code == 422
    assert (await admin.post("/phones/15550000001/picture", json={})).status_code == 404
    await linked.client.disconnect()


async def test_identity_change_drops_sessions_and_reissues_our_token(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    linked = await linked_client(sim, admin)
    friend = await new_phone(admin)
    client = linked.client
    await client.send_text(Jid(friend, "s.whatsapp.net"), "before")
    tokens = sim.server.network.privacy
    await _until(lambda: (linked.number, friend) in tokens.issued)
    key = await tctoken.storage_key(client, Jid(friend, "s.whatsapp.net"))
    await _until(lambda: not client.tc_issuing)
    entry = await tctoken.load(client.store, key)
    assert entry is not None and entry.sender_timestamp is not None
    del tokens.issued[(linked.number, friend)]
    resp = await admin.post(f"/phones/{friend}/reregister")
    assert resp.status_code == 200 and resp.json()["notified"] == 1
    # Re-issued with the timestamp of our earlier issue (Baileys' reissue).
    await _until(lambda: tokens.issued.get((linked.number, friend)) == entry.sender_timestamp)
    # The old session is gone: the next message starts a new one the new phone can read.
    await client.send_text(Jid(friend, "s.whatsapp.net"), "after")

    async def texts() -> list[str]:
        data = (await admin.get(f"/phones/{friend}/messages")).json()
        return [str(m["text"]) for m in data["received"]]

    async with asyncio.timeout(10):
        while "after" not in await texts():
            await asyncio.sleep(0.05)
    assert sim.server.router.enc_counts[(linked.number, friend, "pkmsg")] == 2
    assert (await admin.post("/phones/15550000001/reregister")).status_code == 404
    await linked.client.disconnect()
