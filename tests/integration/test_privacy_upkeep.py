"""Privacy-token and AB-prop upkeep through the simulator: props re-fetched on the answer's
refresh interval (an unchanged set answered without props), expired tokens pruned when the
connection opens, a new companion's tokens from the initial history sync, and the simulator's
issued-token table kept in its state file."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from simtools import client_for, linked_client, new_phone, scan

from wahttp.sim.runner import SimHandle, start_sim
from wahttp.wa.auth.store import MemoryAuthStore
from wahttp.wa.client import Client, Connected, QRCode, tctoken
from wahttp.wa.client.tctoken import TcToken
from wahttp.wa.jid import Jid


async def _until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            got = predicate()
            if not isinstance(got, bool):
                got = await got
            if got:
                return
            await asyncio.sleep(0.05)


def _served(sim: SimHandle, number: str) -> list[bool]:
    """The props queries of `number`'s devices: True where the answer was 'unchanged'."""
    return [u for n, _, u in sim.server.network.privacy.props_served if n == number]


async def test_a_connected_client_sees_a_prop_change_after_the_refresh_interval(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    resp = await admin.put("/props-refresh", json={"seconds": 1})
    assert resp.status_code == 200 and resp.json()["refresh"] == 1
    a = await linked_client(sim, admin)
    await _until(lambda: a.client.ab_props.fetched and a.client.ab_props.refresh == 1)
    assert a.client.ab_props.enabled(10518)
    # The next fetches carry the hash and, the props unchanged, are answered without them.
    await _until(lambda: True in _served(sim, a.number))
    assert a.client.ab_props.enabled(10518)  # an empty answer keeps what we had

    assert (await admin.put("/props/10518", json={"value": "false"})).status_code == 200
    await _until(lambda: not a.client.ab_props.enabled(10518))  # no reconnect needed
    assert a.client.ab_props.hash == (await admin.get("/props")).json()["hash"]
    # The job is the connection's: it ends with it.
    assert any(t.get_name() == "wa-abprops" for t in a.client._tasks)
    await a.client.disconnect()
    await _until(lambda: not any(t.get_name() == "wa-abprops" for t in a.client._tasks))

    bad = await admin.put("/props-refresh", json={"seconds": 0})
    assert bad.status_code == 422


async def test_expired_tokens_are_pruned_when_the_connection_opens(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    await a.client.disconnect()
    old = "1000000000"  # 2001: long expired
    await a.store.set(
        {
            "tctoken": {
                "111@lid": TcToken(b"dead", old).to_json(),
                "222@lid": TcToken(b"live", str(int(time.time()))).to_json(),
                **await tctoken.index_write(a.store, ["111@lid", "222@lid"]),
            }
        }
    )
    await a.reconnect(sim)  # a new client: it has never pruned
    await _until(lambda: "111@lid" not in a.store._keys["tctoken"])
    assert "222@lid" in a.store._keys["tctoken"]
    assert await tctoken.read_index(a.store) == ["222@lid"]
    assert a.client.tc_pruned_at is not None
    await a.client.disconnect()


async def _link_by_qr(
    sim: SimHandle, admin: httpx.AsyncClient, number: str, store: MemoryAuthStore
) -> tuple[Client, asyncio.Task[tuple[int, str]]]:
    """A new companion of `number`, linked by QR and kept running."""
    client, events = client_for(sim, store)
    runner = asyncio.create_task(client.run())
    qr = await events.next(QRCode)
    assert isinstance(qr, QRCode)
    await scan(admin, number, qr.qr)
    await events.next(Connected)
    return client, runner


async def test_a_new_companion_takes_its_tokens_from_the_initial_history_sync(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    ours, friend = await new_phone(admin), await new_phone(admin)
    # Before any companion exists: the friend issues its token to us and we ours to it.
    for issuer, holder in ((friend, ours), (ours, friend)):
        resp = await admin.post(f"/phones/{issuer}/privacy-tokens", json={"to": holder})
        assert resp.status_code == 201
    tokens = sim.server.network.privacy
    store = MemoryAuthStore()
    client, runner = await _link_by_qr(sim, admin, ours, store)
    try:
        lid = str(sim.server.network.accounts[friend].phone.lid)

        async def stored() -> bool:
            return bool(await store.get("tctoken", [lid]))

        await _until(stored)
        entry = tctoken.TcToken.from_json((await store.get("tctoken", [lid]))[lid])
        assert entry is not None
        t, token = tokens.token_for(friend, ours) or (0, b"")
        # Only the history sync carries our own issue time (a notification cannot).
        assert entry == TcToken(token, str(t), tokens.issued[(ours, friend)])
        assert await tctoken.read_index(store) == [lid]
        # The token it brought is the one the simulator accepts.
        before = tokens.accepted_with_token
        await client.send_text(Jid(friend, "s.whatsapp.net"), "with the history's token")
        await _until(lambda: tokens.accepted_with_token > before)
    finally:
        await client.disconnect()
        await runner


async def test_the_state_file_keeps_the_issued_tokens_and_the_props(tmp_path: Path) -> None:
    path = tmp_path / "sim-state.json"
    sim = await start_sim(state_file=path)
    try:
        async with httpx.AsyncClient(base_url=sim.admin_url) as admin:
            a = await linked_client(sim, admin)
            stranger = (await admin.post("/phones", json={"trusting": False})).json()["number"]
            friend = await new_phone(admin)
            for issuer in (stranger, friend):
                resp = await admin.post(f"/phones/{issuer}/privacy-tokens", json={"to": a.number})
                assert resp.status_code == 201
            lids = [str(sim.server.network.accounts[n].phone.lid) for n in (stranger, friend)]
            await _until(lambda: all(lid in a.store._keys.get("tctoken", {}) for lid in lids))
            await admin.put("/props/9666", json={"value": "false"})
            await admin.put("/props-refresh", json={"seconds": 30})
            issued = dict(sim.server.network.privacy.issued)
            await a.client.disconnect()
    finally:
        await sim.stop()
    saved = json.loads(path.read_text())["privacy"]
    assert sorted(map(tuple, saved["issued"])) == sorted((i, h, t) for (i, h), t in issued.items())

    sim = await start_sim(state_file=path)
    try:
        async with httpx.AsyncClient(base_url=sim.admin_url) as admin:
            tokens = sim.server.network.privacy
            assert tokens.issued == issued
            props = (await admin.get("/props")).json()
            assert props["props"]["9666"] == "false" and props["refresh"] == 30
            # The token the stranger issued before the restart still lets us through.
            client, events = client_for(sim, a.store)
            await client.connect()
            await events.next(Connected)
            await client.send_text(Jid(stranger, "s.whatsapp.net"), "still trusted")
            await _until(lambda: tokens.accepted_with_token >= 1)
            assert tokens.refused == []
            # A companion linked after the restart gets what the account holds, as before it.
            second = MemoryAuthStore()
            other, runner = await _link_by_qr(sim, admin, a.number, second)
            await _until(lambda: all(lid in second._keys.get("tctoken", {}) for lid in lids))
            await other.disconnect()
            await runner
            await client.disconnect()
    finally:
        await sim.stop()
