"""Unmodified Baileys 7 against the simulator's app state: linked to a simulated phone, it gets
the phone's app-state key share, and after the phone names a contact or archives and pins a chat
(a `server_sync` notification) it syncs the patches and reports them as its own events; a wahttp
client linked to the same phone as a second companion agrees on the contact's name."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from baileys_tools import Baileys
from simtools import client_for, new_phone, scan

from wahttp.sim.runner import SimHandle
from wahttp.wa.client import Connected, QRCode, appstate

pytestmark = pytest.mark.interop


async def _contact_named(baileys: Baileys, jid: str, name: str) -> dict[str, Any]:
    """Baileys' contacts.upsert (or update) that gives this contact this name."""
    while True:
        event = await baileys.next("contacts", timeout=45)
        for contact in event["contacts"]:
            if contact.get("id") == jid and contact.get("name") == name:
                return dict(contact)


async def _chat_update(baileys: Baileys, jid: str, **wanted: Any) -> dict[str, Any]:
    """The chat as Baileys' chats.update events leave it, once it has every wanted field."""
    seen: dict[str, Any] = {}
    while True:
        event = await baileys.next("chats", timeout=45)
        for chat in event["chats"]:
            if chat.get("id") == jid:
                seen.update(chat)
        if all(key in seen and check(seen[key]) for key, check in wanted.items()):
            return seen


async def _start_baileys(
    sim: SimHandle, admin: httpx.AsyncClient, auth: Path, number: str
) -> Baileys:
    """Baileys paired by code to the phone and left running, as an app does: the phone's key
    share and initial history sync reach the socket that opens after pairing."""
    baileys = await Baileys.start(
        sim.ws_url, sim.root_key_b64, auth, "--pair-number", number, "--media-host", sim.admin_url
    )
    try:
        code = (await baileys.next("pairing-code"))["code"]
        resp = await admin.post(f"/phones/{number}/pairing-code", json={"code": code})
        assert resp.status_code == 200, resp.text
        await baileys.next("paired")
        await baileys.next("open")
    except BaseException:
        await baileys.stop()
        raise
    return baileys


async def _baileys_synced(baileys: Baileys, sim: SimHandle, number: str, auth: Path) -> None:
    """The phone's key share reached Baileys (stored under the phone's key id), then the initial
    bootstrap history sync, after which Baileys ran its first full app-state sync."""
    wanted = base64.b64encode(sim.server.network.accounts[number].app_state.key_id).decode()
    got = await baileys.next("app-state-key", timeout=30)
    assert got["keyId"] == wanted
    assert (auth / f"app-state-sync-key-{wanted.replace('/', '__')}.json").exists()
    status = await baileys.next("history-status", timeout=30)
    assert status == {"event": "history-status", "syncType": 0, "status": "complete"}
    assert (await baileys.next("account-synced", timeout=30))["counter"] == 1


def _baileys_state(auth: Path, name: str) -> tuple[int, bytes]:
    """The version and LT hash Baileys keeps for a collection (its BufferJSON file)."""
    stored = json.loads((auth / f"app-state-sync-version-{name}.json").read_text())
    return int(stored["version"]), base64.b64decode(stored["hash"]["data"])


def _phone_state(sim: SimHandle, number: str, name: str) -> tuple[int, bytes]:
    state = sim.server.network.accounts[number].app_state.collections[name].state
    return state.version, bytes(state.hash)


async def test_baileys_syncs_contact_name_archive_and_pin(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    number = await new_phone(admin)
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    auth = tmp_path / "baileys"
    baileys = await _start_baileys(sim, admin, auth, number)
    try:
        await _baileys_synced(baileys, sim, number, auth)
        resp = await admin.post(f"/phones/{number}/contacts", json={"jid": friend, "name": "Ada L"})
        assert resp.status_code == 200, resp.text
        contact = await _contact_named(baileys, jid, "Ada L")
        assert contact.get("phoneNumber") == jid

        resp = await admin.post(
            f"/phones/{number}/chats/{jid}", json={"archive": True, "pin": True}
        )
        assert resp.status_code == 200, resp.text
        chat = await _chat_update(baileys, jid, archived=lambda v: v is True, pinned=bool)
        assert chat["archived"] is True and chat["pinned"] > 0
        resp = await admin.post(f"/phones/{number}/chats/{jid}", json={"archive": False})
        assert resp.status_code == 200, resp.text
        await _chat_update(baileys, jid, archived=lambda v: v is False)
        # Baileys stored the version and LT hash it reached: the phone's own.
        phone_versions = (await admin.get(f"/phones/{number}/app-state")).json()["versions"]
        assert phone_versions["critical_unblock_low"] == 1
        assert phone_versions["regular_low"] == 2
        for name in ("critical_unblock_low", "regular_low"):
            assert _baileys_state(auth, name) == _phone_state(sim, number, name)
    finally:
        await baileys.stop()


async def test_wahttp_and_baileys_companions_agree_on_a_contact_name(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    number = await new_phone(admin)
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    auth = tmp_path / "baileys"
    baileys = await _start_baileys(sim, admin, auth, number)
    # Our client, the same phone's second companion.
    client, events = client_for(sim)
    runner = asyncio.create_task(client.run())
    try:
        qr = await events.next(QRCode)
        assert isinstance(qr, QRCode)
        await scan(admin, number, qr.qr)
        await events.next(Connected)
        await _baileys_synced(baileys, sim, number, auth)

        async def ours() -> str | None:
            found = await client.store.get(appstate.CHAT_CATEGORY, [jid])
            record = found.get(jid) or {}
            name = record.get("name")
            return str(name) if name is not None else None

        for name in ("Grace H", "Grace Hopper"):
            resp = await admin.post(
                f"/phones/{number}/contacts", json={"jid": friend, "name": name}
            )
            assert resp.status_code == 200, resp.text
            await _contact_named(baileys, jid, name)
            async with asyncio.timeout(30):
                while await ours() != name:
                    await asyncio.sleep(0.05)
        # Both companions reached the phone's version and LT hash of the contacts collection.
        found = await client.store.get(appstate.VERSION_CATEGORY, ["critical_unblock_low"])
        state = appstate.state_of(found.get("critical_unblock_low"))
        phone = _phone_state(sim, number, "critical_unblock_low")
        assert phone[0] == 2
        assert (state.version, bytes(state.hash)) == phone
        assert _baileys_state(auth, "critical_unblock_low") == phone
    finally:
        await client.disconnect()
        runner.cancel()
        await baileys.stop()
