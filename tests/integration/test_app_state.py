"""App-state sync through the simulator: the phone names contacts and changes chat settings,
our client syncs the patches (keys from the phone's key share), refuses a tampered one, and keeps
its versions across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from simtools import Linked, linked_client, new_phone

from wahttp.sim.runner import SimHandle
from wahttp.wa.client import MessageReceived, appstate


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def _record(a: Linked, jid: str) -> dict[str, Any]:
    found = await a.store.get(appstate.CHAT_CATEGORY, [jid])
    return dict(found.get(jid) or {})


async def _version(a: Linked, name: str) -> int:
    found = await a.store.get(appstate.VERSION_CATEGORY, [name])
    return appstate.state_of(found.get(name)).version


async def _has_key(a: Linked) -> bool:
    return bool((await a.store.all_keys()).get(appstate.KEY_CATEGORY))


async def test_phone_renames_a_contact_and_changes_chat_settings(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    await _until(lambda: _has_key(a))
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    resp = await admin.post(f"/phones/{a.number}/contacts", json={"jid": friend, "name": "Ada L"})
    assert resp.status_code == 200, resp.text

    async def named() -> bool:
        return (await _record(a, jid)).get("name") == "Ada L"

    await _until(named)
    assert await _version(a, "critical_unblock_low") == 1
    # The next inbound message carries the contact's name beside its push name.
    sent = await admin.post(f"/phones/{friend}/messages", json={"to": a.number, "text": "hi"})
    assert sent.status_code == 201
    got = await a.events.next(MessageReceived)
    assert isinstance(got, MessageReceived) and got.contact_name == "Ada L"
    # Chat settings: archive, pin, mute.
    resp = await admin.post(
        f"/phones/{a.number}/chats/{jid}", json={"archive": True, "pin": True, "mute": -1}
    )
    assert resp.status_code == 200, resp.text

    async def settled() -> bool:
        r = await _record(a, jid)
        return bool(r.get("archived") and r.get("pinned") and r.get("mutedUntil") == -1)

    await _until(settled)
    assert (await _record(a, jid))["name"] == "Ada L"
    # A contact removed on the phone loses its name here.
    await admin.post(f"/phones/{a.number}/contacts", json={"jid": friend, "name": None})

    async def unnamed() -> bool:
        return "name" not in await _record(a, jid)

    await _until(unnamed)
    await a.client.disconnect()


async def test_tampered_patch_is_refused_and_versions_survive_a_restart(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    await _until(lambda: _has_key(a))
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    await admin.post(f"/phones/{a.number}/contacts", json={"jid": friend, "name": "First"})

    async def first() -> bool:
        return (await _record(a, jid)).get("name") == "First"

    await _until(first)
    # Restart: the stored version is where the next sync starts; the next rename applies on it.
    await a.client.disconnect()
    await a.reconnect(sim)
    assert await _version(a, "critical_unblock_low") == 1
    await admin.post(f"/phones/{a.number}/contacts", json={"jid": friend, "name": "Second"})

    async def second() -> bool:
        return (await _record(a, jid)).get("name") == "Second"

    await _until(second)
    assert await _version(a, "critical_unblock_low") == 2
    # A patch with a flipped byte: refused, nothing applied, the version does not move.
    resp = await admin.post(
        f"/phones/{a.number}/contacts", json={"jid": friend, "name": "Evil", "tamper": True}
    )
    assert resp.status_code == 200
    moved = await appstate.sync(a.client, ["critical_unblock_low"])
    assert moved == {}
    assert (await _record(a, jid)).get("name") == "Second"
    assert await _version(a, "critical_unblock_low") == 2
    await a.client.disconnect()
