"""App-state key requests through the simulator: the phone rotates to a key it does not share up
front (`POST /phones/{n}/app-state/rotate-key {"share": false}`) and encrypts its next patches
with it; our client, missing the key, asks the phone once (APP_STATE_SYNC_KEY_REQUEST, a peer
message to device 0), stores the key share that answers it and applies the waiting changes.

Baileys 7 never sends such a request (it parks the collection until a share comes:
`lib/Socket/chats.js` `blockedCollections`; `lib/Socket/messages-send.js`
`sendPeerDataOperationMessage` has the TODO for it), so the interop side is
`tests/interop/test_baileys_app_state_keys.py`: Baileys and the rotated, unshared key.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from simtools import Linked, linked_client, new_phone

from wahttp.sim.runner import SimHandle
from wahttp.wa.client import appstate
from wahttp.wa.proto.message_pb2 import Message

CONTACTS = "critical_unblock_low"


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def _name(a: Linked, jid: str) -> str | None:
    found = await a.store.get(appstate.CHAT_CATEGORY, [jid])
    name = (found.get(jid) or {}).get("name")
    return str(name) if name is not None else None


async def _keys(a: Linked) -> set[str]:
    return set((await a.store.all_keys()).get(appstate.KEY_CATEGORY, {}))


async def _requests(admin: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    resp = await admin.get(f"/phones/{number}/app-state/key-requests")
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()
    return rows


async def _rotate(admin: httpx.AsyncClient, number: str, share: bool) -> str:
    resp = await admin.post(f"/phones/{number}/app-state/rotate-key", json={"share": share})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["sharedWith"] != []) is share
    return str(body["keyId"])


async def _linked_with_key(sim: SimHandle, admin: httpx.AsyncClient) -> tuple[Linked, str]:
    """A linked client once it holds the phone's first app-state key (base64 id)."""
    a = await linked_client(sim, admin)
    first_key = base64.b64encode(sim.server.network.accounts[a.number].app_state.key_id).decode()

    async def has_first() -> bool:
        return first_key in await _keys(a)

    await _until(has_first)
    return a, first_key


async def _rename(admin: httpx.AsyncClient, number: str, friend: str, name: str) -> None:
    resp = await admin.post(f"/phones/{number}/contacts", json={"jid": friend, "name": name})
    assert resp.status_code == 200, resp.text


async def test_client_asks_the_phone_for_a_rotated_unshared_key_once(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a, first_key = await _linked_with_key(sim, admin)
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    new_key = await _rotate(admin, a.number, share=False)
    assert new_key != first_key and new_key not in await _keys(a)
    await _rename(admin, a.number, friend, "Rotated Ada")

    async def renamed() -> bool:
        return await _name(a, jid) == "Rotated Ada"

    await _until(renamed)
    # It asked once, from its own device, for exactly the key it lacked, and now holds it.
    device = int(a.jid.split("@")[0].split(":")[1])
    assert await _requests(admin, a.number) == [{"device": device, "keyIds": [new_key]}]
    assert await _keys(a) == {first_key, new_key}
    assert a.client.appstate_key_requests.sent == 1
    phone = sim.server.network.accounts[a.number].app_state.collections[CONTACTS].state
    found = await a.store.get(appstate.VERSION_CATEGORY, [CONTACTS])
    ours = appstate.state_of(found.get(CONTACTS))
    assert (ours.version, ours.hash) == (phone.version, phone.hash) == (1, phone.hash)
    # Later changes under the same key need no request; a resync asks nothing either.
    await _rename(admin, a.number, friend, "Ada Again")

    async def again() -> bool:
        return await _name(a, jid) == "Ada Again"

    await _until(again)
    assert await appstate.sync(a.client, [CONTACTS]) == {}
    assert len(await _requests(admin, a.number)) == 1
    await a.client.disconnect()


async def test_keys_missing_while_offline_are_asked_in_one_request(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    """Two rotations and two renames while the client is away: at the reconnect both queued
    server_sync notifications meet patches under two unknown keys; one request asks for both,
    and both changes apply."""
    a, first_key = await _linked_with_key(sim, admin)
    friend, other = await new_phone(admin), await new_phone(admin)
    await a.client.disconnect()
    second = await _rotate(admin, a.number, share=False)
    await _rename(admin, a.number, friend, "Grace")
    third = await _rotate(admin, a.number, share=False)
    await _rename(admin, a.number, other, "Linus")
    await a.reconnect(sim)

    async def both() -> bool:
        return (
            await _name(a, f"{friend}@s.whatsapp.net") == "Grace"
            and await _name(a, f"{other}@s.whatsapp.net") == "Linus"
        )

    await _until(both)
    requests = await _requests(admin, a.number)
    assert len(requests) == 1, requests
    assert sorted(requests[0]["keyIds"]) == sorted([second, third])
    assert await _keys(a) == {first_key, second, third}
    found = await a.store.get(appstate.VERSION_CATEGORY, [CONTACTS])
    assert appstate.state_of(found.get(CONTACTS)).version == 2
    await a.client.disconnect()


async def _key_jobs_done() -> None:
    """Wait for every key request job the clients have running (appstate_keys.request_missing)."""
    jobs = [t for t in asyncio.all_tasks() if t.get_name() == "wa-appstate-keys"]
    await asyncio.gather(*jobs)


async def test_a_key_is_asked_once_while_the_phone_does_not_answer(
    sim: SimHandle, admin: httpx.AsyncClient, monkeypatch: Any
) -> None:
    """Syncs that meet the same missing key again do not ask again (whatsmeow: once per key id
    per 24 h); a new client (a restarted service) asks afresh and gets the key."""
    a, _ = await _linked_with_key(sim, admin)
    app = sim.server.network.accounts[a.number].app_state
    friend = await new_phone(admin)
    new_key = await _rotate(admin, a.number, share=False)
    # The phone hears requests but shares nothing (as if it had lost the key for a while).
    monkeypatch.setattr(app, "key_share", lambda ids=None: Message())
    await _rename(admin, a.number, friend, "Unheard")

    async def asked() -> bool:
        return len(await _requests(admin, a.number)) == 1

    await _until(asked)
    for _ in range(3):
        assert await appstate.sync(a.client, [CONTACTS]) == {}
        await _key_jobs_done()
    assert a.client.appstate_key_requests.sent == 1
    assert await _requests(admin, a.number) == [
        {"device": int(a.jid.split("@")[0].split(":")[1]), "keyIds": [new_key]}
    ]
    assert await _name(a, f"{friend}@s.whatsapp.net") is None
    monkeypatch.undo()
    await a.client.disconnect()
    await a.reconnect(sim)  # a new Client: the next sync asks again, and the phone answers
    assert await appstate.sync(a.client, [CONTACTS]) == {}

    async def renamed() -> bool:
        return await _name(a, f"{friend}@s.whatsapp.net") == "Unheard"

    await _until(renamed)
    assert len(await _requests(admin, a.number)) == 2
    await a.client.disconnect()


async def test_rotated_key_shared_up_front_needs_no_request(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a, _ = await _linked_with_key(sim, admin)
    new_key = await _rotate(admin, a.number, share=True)

    async def has_new() -> bool:
        return new_key in await _keys(a)

    await _until(has_new)
    friend = await new_phone(admin)
    await _rename(admin, a.number, friend, "Shared")

    async def renamed() -> bool:
        return await _name(a, f"{friend}@s.whatsapp.net") == "Shared"

    await _until(renamed)
    assert await _requests(admin, a.number) == []
    assert (await admin.get("/phones/0000000/app-state/key-requests")).status_code == 404
    await a.client.disconnect()
