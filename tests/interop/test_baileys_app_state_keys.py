"""Unmodified Baileys 7 and a rotated app-state key the phone does not share up front.

Baileys 7 does not ask for missing app-state keys: `lib/Socket/chats.js` parks a collection
whose patches need a key it lacks (`blockedCollections`, after `MAX_SYNC_ATTEMPTS` = 2 tries,
`lib/Utils/chat-utils.js`) until an APP_STATE_SYNC_KEY_SHARE sets `myAppStateKeyId`; nothing in
`lib/` sends APP_STATE_SYNC_KEY_REQUEST (`lib/Socket/messages-send.js`
`sendPeerDataOperationMessage` has the TODO "useful for App State Key Resync with phone"). So
this test checks what Baileys does do against the simulator: beside a wahttp companion of the
same phone, after `rotate-key {"share": false}` and a rename, only wahttp asks the phone for the
key (and gets it); Baileys syncs, finds the key missing and stays behind without asking; once
the phone shares its keys (`POST /phones/{n}/app-state/share-keys`) Baileys ends with the
phone's version and LT hash, as wahttp does, and both have the rotated key.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from simtools import client_for, new_phone, scan
from test_baileys_app_state import (
    _baileys_state,
    _baileys_synced,
    _contact_named,
    _phone_state,
    _start_baileys,
)

from wahttp.sim import iq as sim_iq
from wahttp.sim.runner import SimHandle
from wahttp.wa.binary import Node
from wahttp.wa.client import Client, Connected, QRCode, appstate

pytestmark = pytest.mark.interop
CONTACTS = "critical_unblock_low"
SYNC_IQ = ("w:sync:app:state", "sync")


async def _ours(client: Client, jid: str) -> str | None:
    found = await client.store.get(appstate.CHAT_CATEGORY, [jid])
    name = (found.get(jid) or {}).get("name")
    return str(name) if name is not None else None


async def _until_ours(client: Client, jid: str, name: str) -> None:
    async with asyncio.timeout(30):
        while await _ours(client, jid) != name:
            await asyncio.sleep(0.05)


async def test_baileys_does_not_ask_for_a_rotated_key_and_catches_up_once_shared(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path, monkeypatch: Any
) -> None:
    number = await new_phone(admin)
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    auth = tmp_path / "baileys"
    baileys = await _start_baileys(sim, admin, auth, number)
    client, events = client_for(sim)
    runner = asyncio.create_task(client.run())
    try:
        qr = await events.next(QRCode)
        assert isinstance(qr, QRCode)
        ours = await scan(admin, number, qr.qr)
        await events.next(Connected)
        await _baileys_synced(baileys, sim, number, auth)
        account = sim.server.network.accounts[number]
        baileys_device = next(d for d in account.devices if d != ours["device_id"])
        # Count Baileys' app-state sync iqs that ask for the contacts collection (test-side).
        asked: list[str] = []
        handler = sim_iq.HANDLERS[SYNC_IQ]

        async def counting(server: Any, conn: Any, node: Node) -> Node | None:
            sync = node.child("sync")
            names = [c.attr("name") for c in sync.children("collection")] if sync else []
            if conn.device is not None and conn.device.device_id == baileys_device:
                asked.extend(n for n in names if n == CONTACTS)
            return await handler(server, conn, node)

        monkeypatch.setitem(sim_iq.HANDLERS, SYNC_IQ, counting)

        resp = await admin.post(f"/phones/{number}/app-state/rotate-key", json={"share": False})
        assert resp.status_code == 200, resp.text
        rotated = resp.json()["keyId"]
        resp = await admin.post(f"/phones/{number}/contacts", json={"jid": friend, "name": "Ada"})
        assert resp.status_code == 200, resp.text
        # wahttp asks for the key and applies the rename.
        await _until_ours(client, jid, "Ada")
        # Baileys tried: its sync and the snapshot retry (MAX_SYNC_ATTEMPTS), then it parks.
        async with asyncio.timeout(30):
            while len(asked) < 2:
                await asyncio.sleep(0.05)
        rotated_file = auth / f"app-state-sync-key-{rotated.replace('/', '__')}.json"
        assert not rotated_file.exists()
        assert not (auth / f"app-state-sync-version-{CONTACTS}.json").exists()  # nothing applied

        resp = await admin.post(f"/phones/{number}/app-state/share-keys")
        assert resp.status_code == 200, resp.text
        assert baileys_device in resp.json()["sharedWith"]
        # A later change wakes every companion's sync, whether or not Baileys' park had begun.
        resp = await admin.post(f"/phones/{number}/contacts", json={"jid": friend, "name": "Ada L"})
        assert resp.status_code == 200, resp.text
        await _contact_named(baileys, jid, "Ada L")
        await _until_ours(client, jid, "Ada L")
        phone = _phone_state(sim, number, CONTACTS)
        assert phone[0] == 2
        assert _baileys_state(auth, CONTACTS) == phone
        found = await client.store.get(appstate.VERSION_CATEGORY, [CONTACTS])
        state = appstate.state_of(found.get(CONTACTS))
        assert (state.version, bytes(state.hash)) == phone
        assert rotated_file.exists()
        # Only wahttp ever asked, once, for exactly the rotated key.
        requests = (await admin.get(f"/phones/{number}/app-state/key-requests")).json()
        assert requests == [{"device": ours["device_id"], "keyIds": [rotated]}]
        assert base64.b64decode(rotated) == account.app_state.key_id
    finally:
        await client.disconnect()
        runner.cancel()
        await baileys.stop()
