"""Fault injection in the simulator: one fault per connection, refusing connections, restarting
the whole server with its state kept, and a chaos monkey; all through the admin API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from simtools import Linked, Recorder, client_for, linked_client, new_phone

from wahttp.sim.faults import ChaosPlan, chaos_schedule
from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import (
    Client,
    Connected,
    Disconnected,
    Event,
    LoggedOut,
    MessageAck,
    MessageReceived,
)
from wahttp.wa.errors import ConnectionClosed
from wahttp.wa.jid import Jid


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def _faults(admin: httpx.AsyncClient) -> dict[str, Any]:
    resp = await admin.get("/faults")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def _connected(
    sim: SimHandle, store: MemoryAuthStore, **config: object
) -> tuple[Client, Recorder]:
    client, events = client_for(sim, store, **config)
    await client.connect()
    await events.next(Connected)
    return client, events


async def _inbox(admin: httpx.AsyncClient, number: str) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = (await admin.get(f"/phones/{number}/messages")).json()
    return data


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "drop"}, 428),
        ({"kind": "5xx"}, 503),
        ({"kind": "5xx", "code": 500}, 500),
        ({"kind": "515"}, 515),
        ({"kind": "failure-5xx"}, 500),
        ({"kind": "failure-5xx", "code": 503}, 503),
    ],
)
async def test_fail_closes_the_stream_with_the_faults_code(
    sim: SimHandle, admin: httpx.AsyncClient, body: dict[str, Any], expected: int
) -> None:
    a = await linked_client(sim, admin)
    resp = await admin.post(f"/connections/{a.jid}/fail", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"kind": body["kind"], "target": a.jid, "code": expected}
    closed = await a.events.next(Disconnected)
    assert isinstance(closed, Disconnected) and closed.code == expected
    # Nothing was removed: the device logs straight back in.
    await a.reconnect(sim)
    faults = await _faults(admin)
    assert faults["injected"] == {body["kind"]: 1}
    assert faults["log"][-1]["kind"] == body["kind"] and faults["log"][-1]["target"] == a.jid
    await a.client.disconnect()


async def test_440_conflict_stops_the_client_and_removes_nothing(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    resp = await admin.post(f"/connections/{a.jid}/fail", json={"kind": "440"})
    assert resp.json()["code"] == 440
    closed = await a.events.next(Disconnected)
    assert isinstance(closed, Disconnected) and closed.code == 440
    assert not a.events.of(LoggedOut)
    phone = (await admin.get(f"/phones/{a.number}")).json()
    assert [d["jid"] for d in phone["devices"]] == [a.jid]
    await a.reconnect(sim)
    await a.client.disconnect()


async def test_401_unlinks_the_device_like_the_phone_does(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    resp = await admin.post(f"/connections/{a.jid}/fail", json={"kind": "401"})
    assert resp.json()["code"] == 401
    out = await a.events.next(LoggedOut)
    assert isinstance(out, LoggedOut) and out.code == 401
    assert (await admin.get(f"/phones/{a.number}")).json()["devices"] == []


async def test_stall_ends_by_keepalive_or_by_the_servers_abort(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    await a.client.disconnect()
    # The client's keepalive notices the silence first: 408.
    client, events = await _connected(sim, a.store, keepalive_interval=0.1, keepalive_grace=0.3)
    resp = await admin.post(f"/connections/{a.jid}/fail", json={"kind": "stall"})
    assert resp.json() == {"kind": "stall", "target": a.jid, "code": None}
    closed = await events.next(Disconnected, timeout=5)
    assert isinstance(closed, Disconnected) and closed.code == 408
    # With `seconds`, the server aborts the dead link itself, before a slow keepalive would.
    client, events = await _connected(sim, a.store)
    resp = await admin.post(f"/connections/{a.jid}/fail", json={"kind": "stall", "seconds": 0.3})
    assert resp.status_code == 200
    await asyncio.sleep(0.1)
    assert client.is_open  # stalled, not closed yet
    closed = await events.next(Disconnected, timeout=5)
    assert isinstance(closed, Disconnected) and closed.code == 428
    assert (await admin.get("/connections")).json() == []


async def test_fault_requests_are_checked(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    a = await linked_client(sim, admin)
    fail = f"/connections/{a.jid}/fail"
    assert (await admin.post(fail, json={"kind": "boom"})).status_code == 422
    assert (await admin.post(fail, json={"kind": "5xx", "code": 404})).status_code == 422
    assert (await admin.post(fail, json={"kind": "stall", "seconds": -1})).status_code == 422
    nobody = "/connections/15550000000:1@s.whatsapp.net/fail"
    assert (await admin.post(nobody, json={"kind": "drop"})).status_code == 404
    assert (await admin.post("/faults/refuse", json={"seconds": 0})).status_code == 422
    assert (await admin.post("/faults/chaos", json={"count": 0})).status_code == 422
    bad_kind = {"count": 1, "kinds": ["meteor"]}
    assert (await admin.post("/faults/chaos", json=bad_kind)).status_code == 422
    assert (await _faults(admin))["injected"] == {}
    assert a.client.is_open
    await a.client.disconnect()


async def test_refuse_fails_new_connections_then_accepts_again(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    b = await linked_client(sim, admin)
    await b.client.disconnect()
    resp = await admin.post("/faults/refuse", json={"seconds": 60})
    assert resp.status_code == 200 and resp.json()["refusing"] is True

    # The connection is reset during the upgrade, as an unreachable edge would do.
    with pytest.raises((websockets.InvalidHandshake, OSError, EOFError)):
        async with websockets.connect(sim.ws_url, open_timeout=5):
            pass
    client, _ = client_for(sim, b.store)
    with pytest.raises(ConnectionClosed) as closed:
        await client.connect()
    assert closed.value.code == 428
    # Streams that were open stay up.
    assert (await admin.post(f"/connections/{a.jid}/ping")).json() == {"answered": True}

    assert (await admin.delete("/faults/refuse")).json() == {
        "refusing": False,
        "was_refusing": True,
    }
    client, _ = await _connected(sim, b.store)
    await client.disconnect()

    # A refusal ends by itself.
    assert (await admin.post("/faults/refuse", json={"seconds": 0.4})).status_code == 200
    client, _ = client_for(sim, b.store)
    with pytest.raises(ConnectionClosed):
        await client.connect()
    await asyncio.sleep(0.5)
    client, _ = await _connected(sim, b.store)
    faults = await _faults(admin)
    assert faults["injected"] == {"refuse": 2} and faults["refused_connections"] == 3
    assert faults["refusing"] is False
    await client.disconnect()
    await a.client.disconnect()


async def test_restart_cuts_everyone_keeps_state_and_redelivers(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    b = await linked_client(sim, admin)
    friend = await new_phone(admin)

    # `a` gets a message but fails to take it: no receipt, so it stays unacked on the server.
    def refuse_messages(event: Event) -> None:
        if isinstance(event, MessageReceived):
            raise RuntimeError("owner not ready")

    a.client.add_event_handler(refuse_messages)
    sent = {"to": a.number, "text": "before the restart"}
    assert (await admin.post(f"/phones/{friend}/messages", json=sent)).status_code == 201
    first = await a.events.next(MessageReceived)
    assert isinstance(first, MessageReceived) and first.text == "before the restart"
    ws_url = (await admin.get("/info")).json()["ws_url"]

    resp = await admin.post("/faults/restart", json={"down_seconds": 1.0})
    assert resp.status_code == 200, resp.text
    assert resp.json()["dropped"] == 2 and resp.json()["ws_url"] == ws_url
    for linked in (a, b):
        closed = await linked.events.next(Disconnected)
        assert isinstance(closed, Disconnected) and closed.code == 428

    # Down: nothing listens, the admin API still works and the phone can still send.
    faults = await _faults(admin)
    assert faults["listening"] is False and faults["restarting"] is True
    client, _ = client_for(sim, a.store)
    with pytest.raises(ConnectionClosed):
        await client.connect()
    sent = {"to": a.number, "text": "during the restart"}
    assert (await admin.post(f"/phones/{friend}/messages", json=sent)).status_code == 201
    assert (await admin.post("/faults/restart", json={})).status_code == 409

    async def listening() -> bool:
        return bool((await _faults(admin))["listening"])

    await _until(listening, 5)
    assert (await admin.get("/info")).json()["ws_url"] == ws_url  # the same port

    # `a` logs in again: the unacked message comes first, then the one queued while down.
    await a.reconnect(sim)
    texts = []
    for _ in range(2):
        got = await a.events.next(MessageReceived)
        assert isinstance(got, MessageReceived)
        texts.append(got.text)
    assert texts == ["before the restart", "during the restart"]

    async def delivered() -> bool:
        sent_items = (await _inbox(admin, friend))["sent"]
        return len(sent_items) == 2 and all(s["status"] == "delivered" for s in sent_items)

    await _until(delivered)
    # Devices, keys and Signal sessions survived: the two clients still talk.
    await b.reconnect(sim)
    await a.client.send_text(Jid(b.number, "s.whatsapp.net"), "after the restart")
    got = await b.events.next(MessageReceived)
    assert isinstance(got, MessageReceived) and got.text == "after the restart"
    faults = await _faults(admin)
    assert faults["injected"] == {"restart": 1} and faults["restarts"] == 1
    await a.client.disconnect()
    await b.client.disconnect()


async def test_restart_redelivers_each_unacked_receipt_of_a_message(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    """A delivery and a read receipt of one message are two stanzas: neither's ack (nor the
    ack of our own phone's 'sender' receipt) clears the other, and both come again."""
    a = await linked_client(sim, admin)
    friend = await new_phone(admin)
    never = asyncio.Event()

    async def owner_stuck(event: Event) -> None:
        if isinstance(event, MessageAck):
            await never.wait()  # the status is never recorded, so the receipt stays unacked

    a.client.add_event_handler(owner_stuck)
    sent = await a.client.send_text(Jid(friend, "s.whatsapp.net"), "tick tick")

    async def phone_has_it() -> bool:
        return any(m["id"] == sent.id for m in (await _inbox(admin, friend))["received"])

    await _until(phone_has_it)
    read = await admin.post(f"/phones/{friend}/messages/{sent.id}/read")
    assert read.status_code == 200, read.text
    first = await a.events.next(MessageAck)
    assert isinstance(first, MessageAck) and first.status == "delivered"
    box = sim.server.router.mailbox((a.number, Jid.parse(a.jid).device or 0))

    def pending_receipts() -> set[str | None]:
        return {n.attr("type") for n in box.pending.values() if n.attr("id") == sent.id}

    async def both_pending() -> bool:
        return pending_receipts() == {None, "read"}

    await _until(both_pending)

    assert (await admin.post("/faults/restart", json={"down_seconds": 0.3})).status_code == 200
    await a.events.next(Disconnected)
    await sim.server.faults.wait_settled()
    await a.reconnect(sim)
    statuses = []
    for _ in range(2):
        got = await a.events.next(MessageAck)
        assert isinstance(got, MessageAck) and got.ids == (sent.id,)
        statuses.append(got.status)
    assert statuses == ["delivered", "read"]

    async def all_acked() -> bool:
        return not pending_receipts()

    await _until(all_acked)
    await a.client.disconnect()


class Keeper:
    """Keeps one linked device connected, reconnecting at once after every close (as a
    service would, without backoff), and records every close code it sees."""

    def __init__(self, sim: SimHandle, linked: Linked) -> None:
        self.sim = sim
        self.linked = linked
        self.codes: list[int] = []
        self.received = Recorder()
        self.client: Client | None = None
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            client, _ = client_for(
                self.sim, self.linked.store, keepalive_interval=0.2, keepalive_grace=0.4
            )
            client.add_event_handler(self.received)
            try:
                await client.connect()
            except ConnectionClosed as exc:
                self.codes.append(exc.code)
                await asyncio.sleep(0.05)
                continue
            self.client = client
            code, _ = await client.wait_closed()
            self.codes.append(code)

    async def stop(self) -> None:
        self._stop.set()
        if self.client is not None:
            await self.client.disconnect()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, 5)


async def test_chaos_injects_count_faults_then_stops(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    linked = [await linked_client(sim, admin) for _ in range(2)]
    for one in linked:
        await one.client.disconnect()
    keepers = [Keeper(sim, one) for one in linked]
    jids = sorted(one.jid for one in linked)

    async def both_connected() -> bool:
        conns = (await admin.get("/connections")).json()
        return sorted(c["jid"] for c in conns) == jids

    await _until(both_connected)
    # A seed whose ten faults use every default kind; the seed fixes kinds and gaps.
    kinds = ("drop", "stall", "5xx", "515", "refuse", "restart")
    seed = next(
        s
        for s in range(1000)
        if {k for _, k in chaos_schedule(ChaosPlan(10, 0.15, kinds, s))} == set(kinds)
    )
    expected = [k for _, k in chaos_schedule(ChaosPlan(10, 0.15, kinds, seed))]
    plan = {
        "count": 10,
        "interval": 0.15,
        "seed": seed,
        "stall_seconds": 0.3,
        "refuse_seconds": 0.3,
        "down_seconds": 0.3,
    }
    resp = await admin.post("/faults/chaos", json=plan)
    assert resp.status_code == 202, resp.text
    started = resp.json()
    assert started["running"] is True and started["seed"] == seed
    assert started["kinds"] == list(kinds)
    assert (await admin.post("/faults/chaos", json=plan)).status_code == 409

    async def finished() -> bool:
        return not (await _faults(admin))["running"]

    await _until(finished, 20)
    faults = await _faults(admin)
    chaos = faults["chaos"]
    assert chaos["injected"] == 10 and chaos["skipped"] == 0 and chaos["finished_at"]
    assert sum(faults["injected"].values()) == 10 and len(faults["log"]) == 10
    assert [e["kind"] for e in faults["log"]] == expected
    assert faults["restarts"] == expected.count("restart")
    for entry in faults["log"]:
        assert entry["source"] == "chaos"
        assert (entry["target"] in jids) == (entry["kind"] not in ("refuse", "restart"))
    assert faults["listening"] is True and faults["refusing"] is False

    # Every device was cut (a restart cuts all), recovered, and the network works again.
    for keeper in keepers:
        assert keeper.codes and set(keeper.codes) <= {408, 428, 500, 503, 515}
    await _until(both_connected)
    friend = await new_phone(admin)
    for one in linked:
        sent = {"to": one.number, "text": "after the chaos"}
        assert (await admin.post(f"/phones/{friend}/messages", json=sent)).status_code == 201
    for keeper in keepers:
        got = await keeper.received.next(MessageReceived)
        assert isinstance(got, MessageReceived) and got.text == "after the chaos"
    for keeper in keepers:
        await keeper.stop()


async def test_chaos_on_given_targets_and_stopped_early(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    b = await linked_client(sim, admin)
    plan = {
        "count": 1000,
        "interval": 0.05,
        "kinds": ["stall"],
        "targets": [a.jid],
        "stall_seconds": 0.3,
    }
    assert (await admin.post("/faults/chaos", json=plan)).status_code == 202
    closed = await a.events.next(Disconnected)  # the server aborts the stalled link
    assert isinstance(closed, Disconnected) and closed.code == 428
    resp = await admin.delete("/faults/chaos")
    assert resp.status_code == 200
    stopped = resp.json()
    assert stopped["stopped"] is True and stopped["chaos"]["running"] is False
    assert stopped["chaos"]["injected"] == 1  # a stalled target is not hit again
    faults = await _faults(admin)
    assert faults["running"] is False and faults["chaos"]["stopped"] is True
    assert [e["target"] for e in faults["log"]] == [a.jid]
    assert b.client.is_open  # not a target
    assert (await admin.delete("/faults/chaos")).json()["stopped"] is False
    reset = (await admin.delete("/faults")).json()
    assert reset["injected"] == {} and reset["log"] == [] and reset["chaos"] is None
    await b.client.disconnect()
