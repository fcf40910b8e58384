"""Unmodified Baileys 7 gets the simulated phone's app state as external blobs: linked to a phone
that already has contacts and chat settings, its first full sync downloads the snapshots from the
simulator's media host (the driver's --media-host stands in for DNS/TLS of mmg.whatsapp.net) and
reports the contacts; a patch whose mutations travel as an external blob is downloaded and
applied too. Its version and LT hash end equal to the phone's, as do a wahttp companion's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from baileys_tools import Baileys
from simtools import client_for, new_phone, scan
from test_baileys_app_state import (
    _baileys_state,
    _baileys_synced,
    _chat_update,
    _phone_state,
    _start_baileys,
)

from wahttp.sim.runner import SimHandle
from wahttp.wa.client import Connected, QRCode, appstate

pytestmark = pytest.mark.interop


async def _contacts_named(baileys: Baileys, wanted: dict[str, str]) -> None:
    """Baileys' contacts events until every wanted contact has had its name."""
    left = dict(wanted)
    while left:
        event = await baileys.next("contacts", timeout=45)
        for contact in event["contacts"]:
            if left.get(contact.get("id")) == contact.get("name"):
                left.pop(contact["id"])


def _fetches(baileys: Baileys) -> list[dict[str, Any]]:
    return [e for e in baileys.events if e.get("event") == "media-fetch"]


async def test_baileys_syncs_a_snapshot_and_external_mutations(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    number = await new_phone(admin)
    friends = [await new_phone(admin) for _ in range(3)]
    names = {f"{f}@s.whatsapp.net": f"Friend {i}" for i, f in enumerate(friends)}
    for friend, name in zip(friends, names.values(), strict=True):
        resp = await admin.post(f"/phones/{number}/contacts", json={"jid": friend, "name": name})
        assert resp.status_code == 200, resp.text
    jid0 = f"{friends[0]}@s.whatsapp.net"
    resp = await admin.post(f"/phones/{number}/chats/{jid0}", json={"archive": True, "pin": True})
    assert resp.status_code == 200, resp.text
    auth = tmp_path / "baileys"
    baileys = await _start_baileys(sim, admin, auth, number)
    # A wahttp companion of the same phone.
    client, events = client_for(sim)
    runner = asyncio.create_task(client.run())
    try:
        await _baileys_synced(baileys, sim, number, auth)
        await _contacts_named(baileys, names)
        # Both snapshots came from the media host, asked for as https://mmg.whatsapp.net.
        async with asyncio.timeout(30):
            while len(_fetches(baileys)) < 2:
                await asyncio.sleep(0.05)
        assert {(f["host"], f["status"]) for f in _fetches(baileys)} == {("mmg.whatsapp.net", 200)}
        for name in ("critical_unblock_low", "regular_low"):
            assert _baileys_state(auth, name) == _phone_state(sim, number, name)
        served = sim.server.media.served

        # A rename whose mutations travel in an external blob.
        body = {"jid": friends[1], "name": "Renamed", "external": True}
        resp = await admin.post(f"/phones/{number}/contacts", json=body)
        assert resp.status_code == 200, resp.text
        await _contacts_named(baileys, {f"{friends[1]}@s.whatsapp.net": "Renamed"})
        assert sim.server.media.served > served
        assert _phone_state(sim, number, "critical_unblock_low")[0] == 4
        assert _baileys_state(auth, "critical_unblock_low") == _phone_state(
            sim, number, "critical_unblock_low"
        )

        # Chat settings as an external patch (several mutations in one blob), for a chat the
        # snapshot did not touch: Baileys holds back chat updates of its initial sync for chats
        # it has no history of (a conditional update), and merges later ones into them.
        jid1 = f"{friends[1]}@s.whatsapp.net"
        body = {"archive": True, "pin": True, "external": True}
        resp = await admin.post(f"/phones/{number}/chats/{jid1}", json=body)
        assert resp.status_code == 200, resp.text
        chat = await _chat_update(baileys, jid1, archived=lambda v: v is True, pinned=bool)
        assert chat["pinned"] > 0
        assert _baileys_state(auth, "regular_low") == _phone_state(sim, number, "regular_low")

        # The wahttp companion, linked now: the snapshot (v3) plus the external patch (v4).
        qr = await events.next(QRCode)
        assert isinstance(qr, QRCode)
        await scan(admin, number, qr.qr)
        await events.next(Connected)

        async def ours() -> tuple[int, bytes]:
            found = await client.store.get(appstate.VERSION_CATEGORY, ["critical_unblock_low"])
            state = appstate.state_of(found.get("critical_unblock_low"))
            return state.version, bytes(state.hash)

        async with asyncio.timeout(30):
            while await ours() != _phone_state(sim, number, "critical_unblock_low"):
                await asyncio.sleep(0.05)
        found = await client.store.get(appstate.CHAT_CATEGORY, list(names))
        assert found[f"{friends[1]}@s.whatsapp.net"]["name"] == "Renamed"
        assert found[jid0]["name"] == "Friend 0"
    finally:
        await client.disconnect()
        runner.cancel()
        await baileys.stop()
