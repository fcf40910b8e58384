"""Unmodified Baileys 7 against the notifications the simulator sends (sim/account.py) and its
offline delivery (sim/offline.py), each asserting what Baileys does with it, as read in
`Socket/messages-recv.js` (`processNotification`, `handleIdentityChange`), `Socket/chats.js`
(`CB:ib,,dirty`) and `Socket/socket.js` (`CB:ib,,offline_preview`, `CB:ib,,offline`):

- `picture` (`<set>` / `<delete>`): `contacts.update` `{id: <from>, imgUrl: "changed" |
  "removed"}`;
- `account_sync` `<devices>` and `<picture/>`: Baileys does nothing with either (it reads only
  `<disappearing_mode>` and `<blocklist>` there): it acks them and stays connected;
- `encrypt` `<identity/>`: with a session to that contact Baileys asserts a new one (a fresh
  pre-key bundle), so its next message to the re-registered phone is a pkmsg the phone reads;
- `<ib><dirty type="account_sync" timestamp>`: Baileys keeps the timestamp
  (`lastAccountSyncTimestamp`) and sends `<clean>` only from the second dirty on, with the
  timestamp it kept before; the simulator's flag waits until then;
- the offline backlog: Baileys answers the preview with one `<offline_batch count="100"/>`
  and never asks again, processes every `offline` stanza (messages upserted as "append", a
  call with `offline: true`) and reports `receivedPendingNotifications` on `<ib><offline>`.
  Beyond its first 100 the simulator goes on after `offline_batch_wait` without being asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from baileys_tools import Baileys, link_baileys_by_code
from simtools import client_for, new_phone, scan

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import QRCode

pytestmark = pytest.mark.interop


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def _device_key(device: dict[str, object]) -> tuple[str, int]:
    user = str(device["jid"]).split("@")[0]
    number, device_id = user.split(":")
    return number, int(device_id)


async def _linked(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> tuple[str, tuple[str, int], Path]:
    number = await new_phone(admin)
    auth = tmp_path / "baileys"
    device = await link_baileys_by_code(sim, admin, auth, number)
    return number, _device_key(device), auth


async def _hello(baileys: Baileys, admin: httpx.AsyncClient, friend: str, theirs: str) -> None:
    """The friend's phone and Baileys exchange a message: contacts, and a session each way."""
    await admin.post(f"/phones/{friend}/messages", json={"to": theirs, "text": "hi"})
    while (await baileys.next("message"))["text"] != "hi":
        pass
    await baileys.command(cmd="send", to=f"{friend}@s.whatsapp.net", text="hello", ref="h")
    await baileys.next("sent")
    await _received(admin, friend, "hello")


async def _received(admin: httpx.AsyncClient, number: str, text: str) -> None:
    async with asyncio.timeout(30):
        while text not in [
            m["text"] for m in (await admin.get(f"/phones/{number}/messages")).json()["received"]
        ]:
            await asyncio.sleep(0.05)


async def _link_another(sim: SimHandle, admin: httpx.AsyncClient, number: str) -> None:
    """Link a second companion (our client, by QR) to the phone `number`, then drop it."""
    client, events = client_for(sim, MemoryAuthStore())
    runner = asyncio.create_task(client.run())
    qr = await events.next(QRCode)
    assert isinstance(qr, QRCode)
    await scan(admin, number, qr.qr)
    await client.disconnect()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


def _pictures(baileys: Baileys) -> list[dict[str, Any]]:
    return [
        c
        for e in baileys.of("contacts")
        if e["kind"] == "update"
        for c in e["contacts"]
        if "imgUrl" in c
    ]


def _nothing_pending(sim: SimHandle, key: tuple[str, int]) -> Callable[[], bool]:
    return lambda: not sim.server.router.mailbox(key).pending


async def test_picture_is_a_contacts_update_and_account_sync_is_acked(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    theirs, key, auth = await _linked(sim, admin, tmp_path)
    friend = await new_phone(admin)
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        await _hello(baileys, admin, friend, theirs)
        friend_jid = f"{friend}@s.whatsapp.net"

        resp = await admin.post(f"/phones/{friend}/picture", json={})
        assert resp.status_code == 200 and resp.json()["notified"] == 1
        await _until(lambda: len(_pictures(baileys)) == 1)
        assert _pictures(baileys) == [{"id": friend_jid, "imgUrl": "changed"}]
        await admin.post(f"/phones/{friend}/picture", json={"remove": True})
        await _until(lambda: len(_pictures(baileys)) == 2)
        assert _pictures(baileys)[1] == {"id": friend_jid, "imgUrl": "removed"}

        # account_sync <picture/> (our own phone's picture) and <devices> (another companion
        # linked to our account): Baileys ignores both, acks them, and stays connected.
        await admin.post(f"/phones/{theirs}/picture", json={})
        await _link_another(sim, admin, theirs)
        await _until(_nothing_pending(sim, key))
        acks = (await admin.get("/stats")).json()["acks"]
        assert acks["notification:account_sync"] == 2
        assert acks["notification:picture"] == 2
        await admin.post(f"/phones/{friend}/picture", json={})  # a marker after them
        await _until(lambda: len(_pictures(baileys)) == 3)
        assert [p["id"] for p in _pictures(baileys)] == [friend_jid] * 3
        assert baileys.of("close") == []
        assert sim.server.connection(f"{theirs}:{key[1]}@s.whatsapp.net") is not None
    finally:
        await baileys.stop()


async def test_identity_change_gives_baileys_a_new_session(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    theirs, key, auth = await _linked(sim, admin, tmp_path)
    friend = await new_phone(admin)
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        await _hello(baileys, admin, friend, theirs)
        enc = sim.server.router.enc_counts
        pkmsg, msg = enc[(theirs, friend, "pkmsg")], enc[(theirs, friend, "msg")]

        resp = await admin.post(f"/phones/{friend}/reregister")
        assert resp.status_code == 200 and resp.json()["notified"] == 1
        await _until(_nothing_pending(sim, key))
        assert (await admin.get("/stats")).json()["acks"]["notification:encrypt"] == 1
        # Baileys asserted a new session (the phone's new bundle): its next message is a
        # pkmsg the new phone reads, with no retry round.
        await baileys.command(cmd="send", to=f"{friend}@s.whatsapp.net", text="after", ref="a")
        await baileys.next("sent")
        await _received(admin, friend, "after")
        assert enc[(theirs, friend, "pkmsg")] == pkmsg + 1
        assert enc[(theirs, friend, "msg")] == msg
        inbox = (await admin.get(f"/phones/{friend}/messages")).json()
        assert inbox["undecryptable"] == 0
        # And the re-registered phone's own first message reaches Baileys.
        await admin.post(f"/phones/{friend}/messages", json={"to": theirs, "text": "back"})
        while (event := await baileys.next("message"))["text"] != "back":
            assert event["stub"] is None
        assert baileys.of("close") == []
    finally:
        await baileys.stop()


async def test_dirty_account_sync_is_cleaned_from_the_second_login(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    theirs, key, auth = await _linked(sim, admin, tmp_path)
    await _link_another(sim, admin, theirs)  # while Baileys is away: an account_sync waits
    assert key in sim.server.network.dirty
    cleaned = sim.server.network.cleaned

    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        first = (await baileys.next("dirty-timestamp"))["timestamp"]
        await baileys.next("pending-notifications")
        await _until(_nothing_pending(sim, key))  # the queued account_sync acked
    finally:
        await baileys.stop()
    # Baileys kept the timestamp and sent no <clean> (it had none kept before).
    assert sim.server.network.cleaned == cleaned
    assert key in sim.server.network.dirty

    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        await baileys.next("dirty-timestamp")
        await _until(lambda: sim.server.network.cleaned == cleaned + 1)
        assert key not in sim.server.network.dirty
        dirty = (await admin.get("/stats")).json()["dirty"]
        assert dirty["last_clean"] == {
            "device": f"{theirs}:{key[1]}@s.whatsapp.net",
            "type": "account_sync",
            "timestamp": str(first),  # the one it kept from the first login
        }
    finally:
        await baileys.stop()


async def test_offline_backlog_once_each_then_received_pending_notifications(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    count = 120  # more than Baileys' one batch of 100
    sim.server.offline_batch_wait = 2.0
    theirs, key, auth = await _linked(sim, admin, tmp_path)
    friend = await new_phone(admin)
    resp = await admin.post(
        f"/phones/{friend}/messages/burst", json={"to": theirs, "text": "away", "count": count}
    )
    assert resp.status_code == 201
    sent_ids = {m["id"] for m in resp.json()}
    call = await admin.post(f"/phones/{friend}/call", json={"to": theirs})
    assert call.status_code == 201

    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        await baileys.next("pending-notifications", timeout=60)
        await _until(
            lambda: len([e for e in baileys.of("message") if e["id"] in sent_ids]) >= count
        )
        got = [e for e in baileys.of("message") if e["id"] in sent_ids]
        assert sorted(e["id"] for e in got) == sorted(sent_ids)  # each exactly once
        assert {e["upsertType"] for e in got} == {"append"}  # offline: not a notification
        assert {e["text"] for e in got} == {f"away {i}" for i in range(count)}
        offer = await baileys.next("call")
        assert offer["id"] == call.json()["id"] and offer["offline"] is True

        conn = sim.server.connection(f"{theirs}:{key[1]}@s.whatsapp.net")
        assert conn is not None and conn.offline is not None
        assert conn.offline_batches == 1  # Baileys asks once, for 100
        assert conn.offline.sent >= count + 1
        assert (await admin.get("/stats")).json()["offline"]["lenient"] == 1  # the rest

        # Every one acked and receipted.
        await _until(_nothing_pending(sim, key))

        async def delivered() -> int:
            sent = (await admin.get(f"/phones/{friend}/messages")).json()["sent"]
            return sum(1 for m in sent if m["id"] in sent_ids and m["status"] != "sent")

        async with asyncio.timeout(30):
            while await delivered() < count:
                await asyncio.sleep(0.1)

        # Live again: a new message is a notification, not from the backlog.
        await admin.post(f"/phones/{friend}/messages", json={"to": theirs, "text": "live"})
        while (event := await baileys.next("message"))["text"] != "live":
            pass
        assert event["upsertType"] == "notify"
    finally:
        await baileys.stop()
