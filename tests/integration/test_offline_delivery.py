"""What waited for our client while it was away comes as WhatsApp's server sends it: a preview,
then batches we ask for (100 at a time, the next one once a batch is handled), each stanza
marked `offline`, then `<ib><offline>`: every message exactly once, acked and receipted, a
call from the backlog not rejected (it no longer rings), and the session status says so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from servicetools import wait_status
from simtools import client_for, linked_client, new_phone

from wahttp.sim.runner import SimHandle
from wahttp.wa.client import CallOffer, Connected, MessageReceived, OfflineSyncCompleted

BACKLOG = 150  # more than one batch of 100


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_backlog_in_batches_each_message_once_and_a_missed_call(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    sim.server.offline_batch_wait = 120.0  # a stall would show as a timeout, not a fallback
    linked = await linked_client(sim, admin)
    await linked.client.disconnect()
    friend = await new_phone(admin)
    resp = await admin.post(
        f"/phones/{friend}/messages/burst",
        json={"to": linked.number, "text": "away", "count": BACKLOG},
    )
    assert resp.status_code == 201, resp.text
    sent_ids = [m["id"] for m in resp.json()]
    call = await admin.post(f"/phones/{friend}/call", json={"to": linked.number})
    assert call.status_code == 201

    client, events = client_for(sim, linked.store, reject_calls=True)
    await client.connect()
    await events.next(Connected)
    done = await events.next(OfflineSyncCompleted, timeout=60)
    # The texts, the call, and whatever else waited (a privacy token from the phone...).
    assert isinstance(done, OfflineSyncCompleted) and done.count > BACKLOG
    received = [e for e in events.of(MessageReceived) if isinstance(e, MessageReceived)]
    assert sorted(e.id for e in received) == sorted(sent_ids)  # each exactly once
    assert {e.text for e in received} == {f"away {i}" for i in range(BACKLOG)}
    (offer,) = [e for e in events.of(CallOffer) if isinstance(e, CallOffer)]
    assert offer.offline and not offer.rejected

    conn = sim.server.connection(linked.jid)
    assert conn is not None and conn.offline is not None
    assert conn.offline_batches == 2  # the preview's answer, then once 100 were handled
    assert conn.offline.sent == done.count
    assert sim.server.offline_stats.lenient == 0
    # Acked and receipted: nothing stays pending, the phone saw them delivered.
    box = sim.server.router.mailbox((linked.number, int(linked.jid.split(":")[1].split("@")[0])))
    await _until(lambda: not box.pending)
    assert [c["status"] for c in (await admin.get(f"/phones/{friend}/calls")).json()] == ["ringing"]
    stats = (await admin.get("/stats")).json()["offline"]
    assert stats["delivered"] >= done.count and stats["completed"] >= 2

    # Live now: a new message comes unmarked, and no new backlog appears.
    await admin.post(f"/phones/{friend}/messages", json={"to": linked.number, "text": "live"})
    await _until(lambda: any(e.text == "live" for e in events.of(MessageReceived)))  # type: ignore[union-attr]
    assert conn.offline.sent == done.count
    await client.disconnect()


async def test_session_status_reports_the_backlog_delivered(
    api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    assert (await api.post("/sessions", json={"id": "o"})).status_code == 201
    number = await new_phone(admin)
    code = (await api.post("/sessions/o/pair-request", json={"number": number})).json()
    await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
    await wait_status(api, "o", "open")
    async with asyncio.timeout(30):
        while not (await api.get("/sessions/o/status")).json()["received_pending_notifications"]:
            await asyncio.sleep(0.05)
