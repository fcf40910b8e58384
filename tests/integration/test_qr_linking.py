"""Our client links to the simulator by QR, logs straight back in, and handles server closes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from simtools import client_for, new_phone, scan

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import Connected, Disconnected, LoggedOut, PairSuccess, QRCode
from wahttp.wa.client.pair import QR_URL_PREFIX


async def _link(sim: SimHandle, admin: httpx.AsyncClient, store: MemoryAuthStore) -> str:
    client, events = client_for(sim, store)
    runner = asyncio.create_task(client.run())
    qr = await events.next(QRCode)
    assert isinstance(qr, QRCode) and qr.qr.startswith(QR_URL_PREFIX)
    number = await new_phone(admin)
    device = await scan(admin, number, qr.qr)
    await events.next(Connected)
    paired = events.of(PairSuccess)
    assert len(paired) == 1 and isinstance(paired[0], PairSuccess)
    assert paired[0].jid == device["jid"] and paired[0].lid == device["lid"]
    # The 515 restart happened in between, as after every real pairing.
    assert any(isinstance(e, Disconnected) and e.code == 515 for e in events.events)
    await client.disconnect()
    await runner
    return str(device["jid"])


async def test_links_by_qr_then_logs_in_from_saved_creds(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    store = MemoryAuthStore()
    jid = await _link(sim, admin, store)
    creds = await store.load_creds()
    assert creds is not None and creds.me is not None and creds.me.id == jid
    assert creds.account is not None and creds.account.deviceSignature
    # 812 uploaded; the phone's app-state key share, sent right after linking, may use one.
    assert store.count("pre-key") in (811, 812)

    # A new client over the same store logs in without any QR.
    client, events = client_for(sim, store)
    await client.connect()
    connected = await events.next(Connected)
    assert isinstance(connected, Connected) and connected.jid == jid
    assert not events.of(QRCode)
    phone = (await admin.get(f"/phones/{jid.split(':')[0]}")).json()
    assert phone["devices"][0]["connected"] is True
    # Pre-keys are not uploaded twice: the server still holds the first batch (less the one
    # the phone's key share may have taken).
    assert phone["devices"][0]["pre_keys"] in (811, 812)
    assert store.count("pre-key") in (811, 812)
    await client.disconnect()


async def test_qr_refs_rotate_then_give_up_with_408(sim: SimHandle) -> None:
    client, events = client_for(sim, qr_first_timeout=0.2, qr_next_timeout=0.1)
    code, _ = await asyncio.wait_for(client.run(), 15)
    assert code == 408
    qrs = [e.qr for e in events.of(QRCode) if isinstance(e, QRCode)]
    assert len(qrs) == 6 and len(set(qrs)) == 6  # one QR per ref, each different


async def test_wrong_root_key_is_refused(sim: SimHandle) -> None:
    from wahttp.wa.crypto import KeyPair
    from wahttp.wa.errors import CertificateError

    client, _ = client_for(sim, root_key=KeyPair.generate().public)
    with pytest.raises(CertificateError):
        await client.connect()


async def test_garbled_handshake_does_not_hurt_other_clients(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    import websockets

    for garbage in (b"\x00\x01\x02", b"WA\x06\x03\x00\x00\x05hello", b"ED\x00\x01\xff\xff\xff"):
        async with websockets.connect(sim.ws_url) as ws:
            await ws.send(garbage)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
    store = MemoryAuthStore()
    await _link(sim, admin, store)


async def test_unlink_from_phone_logs_the_device_out(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    store = MemoryAuthStore()
    jid = await _link(sim, admin, store)
    client, events = client_for(sim, store)
    await client.connect()
    await events.next(Connected)
    number, device_id = jid.split("@")[0].split(":")
    resp = await admin.delete(f"/phones/{number}/devices/{device_id}")
    assert resp.status_code == 204
    out = await events.next(LoggedOut)
    assert isinstance(out, LoggedOut) and out.code == 401
    # The server forgets the device: logging in again is refused with 401 as well.
    again, events2 = client_for(sim, store)
    await again.connect()
    refused = await events2.next(LoggedOut)
    assert isinstance(refused, LoggedOut) and refused.code == 401


@pytest.mark.parametrize("code", [515, 503, 500])
async def test_stream_errors_close_with_their_code(
    sim: SimHandle, admin: httpx.AsyncClient, code: int
) -> None:
    store = MemoryAuthStore()
    jid = await _link(sim, admin, store)
    client, events = client_for(sim, store)
    await client.connect()
    await events.next(Connected)
    resp = await admin.post(f"/connections/{jid}/stream-error", json={"code": code})
    assert resp.status_code == 200
    closed = await events.next(Disconnected)
    assert isinstance(closed, Disconnected) and closed.code == code


async def test_second_connection_replaces_the_first_with_440(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    store = MemoryAuthStore()
    await _link(sim, admin, store)
    first, events1 = client_for(sim, store)
    await first.connect()
    await events1.next(Connected)
    second, events2 = client_for(sim, store)
    await second.connect()
    await events2.next(Connected)
    replaced = await events1.next(Disconnected)
    assert isinstance(replaced, Disconnected) and replaced.code == 440
    await second.disconnect()


async def test_dropped_connection_reports_disconnect(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    store = MemoryAuthStore()
    jid = await _link(sim, admin, store)
    client, events = client_for(sim, store)
    await client.connect()
    await events.next(Connected)
    assert client.is_open
    assert (await admin.post(f"/connections/{jid}/drop")).status_code == 200
    closed = await events.next(Disconnected)
    assert isinstance(closed, Disconnected) and closed.code == 428
    assert not client.is_open


async def test_admin_api_rejects_bad_input(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    number = await new_phone(admin)
    assert (await admin.post(f"/phones/{number}/scan", json={"qr": "nonsense"})).status_code == 400
    unknown_ref = QR_URL_PREFIX + "2@nope," + ",".join(["A" * 43 + "="] * 3) + ",1"
    resp = await admin.post(f"/phones/{number}/scan", json={"qr": unknown_ref})
    assert resp.status_code == 410 and resp.json()["error"]["code"] == "link_failed"
    assert (await admin.post("/phones/999999/scan", json={"qr": "x"})).status_code == 404
    assert (await admin.post("/phones", json={"number": number})).status_code == 409
    assert (await admin.post("/phones", json={"number": "abc"})).status_code == 422


async def test_keepalive_pings_and_a_stalled_link_is_declared_dead(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    store = MemoryAuthStore()
    jid = await _link(sim, admin, store)
    client, events = client_for(sim, store, keepalive_interval=0.1, keepalive_grace=0.3)
    await client.connect()
    await events.next(Connected)
    await asyncio.sleep(0.5)
    pings = {c["jid"]: c["pings"] for c in (await admin.get("/connections")).json()}
    assert pings[jid] >= 2  # the client pinged, the server answered, the link stayed up
    assert client.is_open
    assert (await admin.post(f"/connections/{jid}/stall")).status_code == 200
    closed = await events.next(Disconnected, timeout=5)
    assert isinstance(closed, Disconnected) and closed.code == 408
    assert not client.is_open


async def test_client_answers_the_servers_ping(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    store = MemoryAuthStore()
    jid = await _link(sim, admin, store)
    client, events = client_for(sim, store)
    await client.connect()
    await events.next(Connected)
    assert (await admin.post(f"/connections/{jid}/ping")).json() == {"answered": True}
    await client.disconnect()
