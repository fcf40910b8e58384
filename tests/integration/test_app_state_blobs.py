"""App state delivered as external blobs through the simulator's media host: a client linked to
a phone that already has contacts and chat settings gets them from a snapshot blob (and a later
companion from the same snapshot plus the patches after it), a patch's external mutations are
downloaded and applied, and a failed download changes nothing and is retried."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from simtools import Linked, client_for, linked_client, new_phone, scan

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import Connected, QRCode, appstate
from wahttp.wa.proto import appstate_pb2 as pb


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def _record(a: Linked, jid: str) -> dict[str, Any]:
    found = await a.store.get(appstate.CHAT_CATEGORY, [jid])
    return dict(found.get(jid) or {})


async def _state(a: Linked, name: str) -> tuple[int, bytes]:
    found = await a.store.get(appstate.VERSION_CATEGORY, [name])
    state = appstate.state_of(found.get(name))
    return state.version, bytes(state.hash)


def _phone_state(sim: SimHandle, number: str, name: str) -> tuple[int, bytes]:
    state = sim.server.network.accounts[number].app_state.collections[name].state
    return state.version, bytes(state.hash)


async def _link_to(sim: SimHandle, admin: httpx.AsyncClient, number: str) -> Linked:
    """A new wahttp companion of an existing phone, left running (as the service does) so the
    phone's key share and the first sync happen on the connection that follows the link."""
    store = MemoryAuthStore()
    client, events = client_for(sim, store)
    _runners.append(asyncio.create_task(client.run()))
    qr = await events.next(QRCode)
    assert isinstance(qr, QRCode)
    device = await scan(admin, number, qr.qr)
    await events.next(Connected)
    return Linked(client, events, store, number, str(device["jid"]))


_runners: list[asyncio.Task[tuple[int, str]]] = []


@pytest.fixture(autouse=True)
async def _stop_runners() -> AsyncIterator[None]:
    yield
    while _runners:
        task = _runners.pop()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def _name(
    admin: httpx.AsyncClient, number: str, friend: str, name: str | None, **extra: Any
) -> None:
    body = {"jid": friend, "name": name, **extra}
    resp = await admin.post(f"/phones/{number}/contacts", json=body)
    assert resp.status_code == 200, resp.text


async def test_existing_state_arrives_as_a_snapshot_then_snapshot_plus_patches(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    number = await new_phone(admin)
    friends = [await new_phone(admin) for _ in range(3)]
    for i, friend in enumerate(friends):
        await _name(admin, number, friend, f"Friend {i}")
    jid0 = f"{friends[0]}@s.whatsapp.net"
    resp = await admin.post(f"/phones/{number}/chats/{jid0}", json={"archive": True, "pin": True})
    assert resp.status_code == 200, resp.text
    media = sim.server.media
    assert media.served == 0

    a = await _link_to(sim, admin, number)

    async def all_named(who: Linked) -> bool:
        for i, friend in enumerate(friends):
            if (await _record(who, f"{friend}@s.whatsapp.net")).get("name") != f"Friend {i}":
                return False
        return bool((await _record(who, jid0)).get("archived"))

    await _until(lambda: all_named(a))
    # Both collections with state came as snapshot blobs from the media host.
    assert media.served == 2
    assert sim.server.network.accounts[number].app_state.collections["regular_low"].snapshot
    for name in ("critical_unblock_low", "regular_low"):
        assert await _state(a, name) == _phone_state(sim, number, name)
    assert (await _record(a, jid0))["pinned"]

    # Two more changes: a companion linked now gets the same snapshot (v3) plus patches 4, 5.
    await _name(admin, number, friends[1], "Renamed")
    await _name(admin, number, friends[2], None)

    async def changed(who: Linked) -> bool:
        one = await _record(who, f"{friends[1]}@s.whatsapp.net")
        two = await _record(who, f"{friends[2]}@s.whatsapp.net")
        return one.get("name") == "Renamed" and "name" not in two

    await _until(lambda: changed(a))
    b = await _link_to(sim, admin, number)

    async def b_synced() -> bool:
        return await changed(b) and bool((await _record(b, jid0)).get("archived"))

    await _until(b_synced)
    assert (await _record(b, jid0)).get("name") == "Friend 0"
    assert _phone_state(sim, number, "critical_unblock_low")[0] == 5
    for who in (a, b):
        for name in ("critical_unblock_low", "regular_low"):
            assert await _state(who, name) == _phone_state(sim, number, name)
    coll = sim.server.network.accounts[number].app_state.collections["critical_unblock_low"]
    assert coll.snapshot is not None and coll.snapshot[0] == 3
    await a.client.disconnect()
    await b.client.disconnect()


async def test_external_mutations_are_downloaded_and_applied(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)

    async def has_key() -> bool:
        return bool((await a.store.all_keys()).get(appstate.KEY_CATEGORY))

    await _until(has_key)
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    await _name(admin, a.number, friend, "Inline")
    await _until(lambda: _is_named(a, jid, "Inline"))
    served = sim.server.media.served
    await _name(admin, a.number, friend, "External", external=True)
    await _until(lambda: _is_named(a, jid, "External"))
    assert sim.server.media.served == served + 1
    patches = sim.server.network.accounts[a.number].app_state.collections["critical_unblock_low"]
    assert await _state(a, "critical_unblock_low") == (patches.state.version, patches.state.hash)
    # Chat settings as an external patch too (several mutations in one blob).
    resp = await admin.post(
        f"/phones/{a.number}/chats/{jid}", json={"archive": True, "read": True, "external": True}
    )
    assert resp.status_code == 200, resp.text

    async def settled() -> bool:
        r = await _record(a, jid)
        return bool(r.get("archived") and r.get("read"))

    await _until(settled)
    assert await _state(a, "regular_low") == _phone_state(sim, a.number, "regular_low")
    await a.client.disconnect()


async def _is_named(a: Linked, jid: str, name: str) -> bool:
    return (await _record(a, jid)).get("name") == name


@pytest.mark.parametrize("status", [404, 500])
async def test_failed_blob_download_keeps_state_and_is_retried(
    sim: SimHandle, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.WARNING)
    number = await new_phone(admin)
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    await _name(admin, number, friend, "Before")
    media = sim.server.media
    # The first sync's snapshot download fails once; the retry gets it.
    resp = await admin.post("/faults/media", json={"status": status, "count": 1})
    assert resp.status_code == 200, resp.text
    a = await _link_to(sim, admin, number)
    await _until(lambda: _is_named(a, jid, "Before"))
    assert media.refused == 1
    assert await _state(a, "critical_unblock_low") == _phone_state(
        sim, number, "critical_unblock_low"
    )
    # An external patch whose download fails: the old name and version stay until the retry.
    await admin.post("/faults/media", json={"status": status, "count": 1})
    await _name(admin, number, friend, "After", external=True)

    async def refused_twice() -> bool:
        return media.refused == 2

    await _until(refused_twice)
    assert (await _record(a, jid)).get("name") == "Before"
    assert (await _state(a, "critical_unblock_low"))[0] == 1
    await _until(lambda: _is_named(a, jid, "After"))
    assert await _state(a, "critical_unblock_low") == _phone_state(
        sim, number, "critical_unblock_low"
    )
    # The warning names the collection, never the blob's key or path.
    warnings = [r.getMessage() for r in caplog.records if "blob download failed" in r.getMessage()]
    assert len(warnings) == 2 and all("critical_unblock_low" in w for w in warnings)
    coll = sim.server.network.accounts[number].app_state.collections["critical_unblock_low"]
    ref = pb.SyncdPatch.FromString(coll.patches[-1]).externalMutations
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ref.directPath and base64.b64encode(ref.mediaKey).decode() not in logged
    assert ref.mediaKey.hex() not in logged and ref.directPath.split("?")[0] not in logged
    await a.client.disconnect()


async def test_a_failed_blob_download_is_synced_again_after_a_reconnect(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    """The retry scheduled after a failed download dies with its connection and the server does
    not announce the change again: the next login syncs that collection."""
    number = await new_phone(admin)
    friend = await new_phone(admin)
    jid = f"{friend}@s.whatsapp.net"
    await _name(admin, number, friend, "Before")
    a = await _link_to(sim, admin, number)
    await _until(lambda: _is_named(a, jid, "Before"))
    media = sim.server.media
    refused = media.refused
    await admin.post("/faults/media", json={"status": 500, "count": 1})
    await _name(admin, number, friend, "After", external=True)

    async def failed() -> bool:
        return media.refused == refused + 1

    await _until(failed)
    await a.client.disconnect()  # before the retry (2 s later) runs
    assert (await _record(a, jid)).get("name") == "Before"
    _runners.append(asyncio.create_task(a.client.run()))
    await _until(lambda: _is_named(a, jid, "After"))
    assert await _state(a, "critical_unblock_low") == _phone_state(
        sim, number, "critical_unblock_low"
    )
    await a.client.disconnect()
