"""Privacy tokens and AB props through the simulator, which enforces them as the real server:
with prop 10518 on, a 1:1 message without the contact's token is refused with 463."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from simtools import linked_client, new_phone

from wahttp.sim.runner import SimHandle
from wahttp.wa.binary import Node
from wahttp.wa.client import MessageFailed, MessageReceived
from wahttp.wa.client.send import SendError
from wahttp.wa.jid import Jid


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def _stranger(admin: httpx.AsyncClient) -> str:
    resp = await admin.post("/phones", json={"trusting": False})
    assert resp.status_code == 201, resp.text
    assert resp.json()["trusting"] is False
    return str(resp.json()["number"])


async def _received(admin: httpx.AsyncClient, number: str) -> list[str]:
    data = (await admin.get(f"/phones/{number}/messages")).json()
    return [str(m["text"]) for m in data["received"]]


async def test_props_are_fetched_after_login_and_their_hash_kept(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    await _until(lambda: a.client.ab_props.fetched)
    served = (await admin.get("/props")).json()
    assert served["props"]["10518"] == "true"
    assert a.client.ab_props.enabled(10518)
    assert a.client.ab_props.hash == served["hash"]
    assert a.client.creds.last_prop_hash == served["hash"]
    stored = await a.store.load_creds()
    assert stored is not None and stored.last_prop_hash == served["hash"]
    # Turned off, the next login sees it.
    assert (await admin.put("/props/10518", json={"value": "false"})).status_code == 200
    await a.client.disconnect()
    await a.reconnect(sim)
    await _until(lambda: a.client.ab_props.fetched)
    assert not a.client.ab_props.enabled(10518)
    await a.client.disconnect()


async def test_first_contact_brings_the_token_and_the_next_send_carries_it(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    friend = await new_phone(admin)
    tokens = sim.server.network.privacy
    friend_lid = str(sim.server.network.accounts[friend].phone.lid)
    await a.client.send_text(Jid(friend, "s.whatsapp.net"), "first")
    # The friend answered the first contact with its token (before the ack), stored by LID.
    stored = await a.store.get("tctoken", [friend_lid])
    assert stored[friend_lid]["token"] and stored[friend_lid]["timestamp"]
    assert tokens.first_contacts == 1
    # And we issued ours to the friend after sending (once for this bucket).
    await _until(lambda: (a.number, friend) in tokens.issued)
    await _until(lambda: "senderTimestamp" in a.store._keys["tctoken"][friend_lid])
    await a.client.send_text(Jid(friend, "s.whatsapp.net"), "second")
    assert tokens.accepted_with_token == 1
    assert tokens.refused == []
    await _until(lambda: len(tokens.issued) == 2)
    await asyncio.sleep(0.2)
    assert len(tokens.issued) == 2  # not issued again within the bucket
    assert await _wait_text(admin, friend, "second")
    await a.client.disconnect()


async def _wait_text(admin: httpx.AsyncClient, number: str, text: str) -> bool:
    async with asyncio.timeout(10):
        while text not in await _received(admin, number):
            await asyncio.sleep(0.05)
    return True


async def test_a_stranger_refuses_without_its_token_then_accepts_once_it_wrote(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    stranger = await _stranger(admin)
    tokens = sim.server.network.privacy
    with pytest.raises(SendError) as refused:
        await a.client.send_text(Jid(stranger, "s.whatsapp.net"), "hello?")
    assert refused.value.code == 463
    assert "privacy token" in refused.value.reason
    failed = await a.events.next(MessageFailed)
    assert isinstance(failed, MessageFailed) and failed.code == 463
    assert failed.chat == f"{stranger}@s.whatsapp.net"
    assert tokens.refused == [(a.number, stranger, 463)]
    # Recovery as Baileys does it: our token goes to the contact; the message is not resent.
    await _until(lambda: (a.number, stranger) in tokens.issued)
    await asyncio.sleep(0.2)
    assert await _received(admin, stranger) == []

    # The stranger writes first: its token comes before its message.
    reply = await admin.post(f"/phones/{stranger}/messages", json={"to": a.number, "text": "hi"})
    assert reply.status_code == 201
    got = await a.events.next(MessageReceived)
    assert isinstance(got, MessageReceived) and got.text == "hi"
    await a.client.send_text(Jid(stranger, "s.whatsapp.net"), "hello again")
    assert tokens.accepted_with_token == 1
    assert await _wait_text(admin, stranger, "hello again")
    await a.client.disconnect()


async def test_with_the_prop_off_no_token_is_needed_nor_sent(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    assert (await admin.put("/props/10518", json={"value": "false"})).status_code == 200
    a = await linked_client(sim, admin)
    await _until(lambda: a.client.ab_props.fetched)
    stranger = await _stranger(admin)
    tokens = sim.server.network.privacy
    await a.client.send_text(Jid(stranger, "s.whatsapp.net"), "no token needed")
    assert tokens.refused == []
    # Even holding the stranger's token, the client leaves it out while the prop is off.
    issued = await admin.post(f"/phones/{stranger}/privacy-tokens", json={"to": a.number})
    assert issued.status_code == 201
    lid = str(sim.server.network.accounts[stranger].phone.lid)
    await _until(lambda: lid in a.store._keys.get("tctoken", {}))
    await a.client.send_text(Jid(stranger, "s.whatsapp.net"), "still none")
    assert tokens.accepted_with_token == 0
    assert await _wait_text(admin, stranger, "still none")
    await a.client.disconnect()


async def test_a_token_on_a_message_to_our_own_devices_is_refused_with_479(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    own_phone = f"{a.number}@s.whatsapp.net"
    enc = Node("enc", {"v": "2", "type": "msg"}, b"\x00" * 8)
    stanza = Node(
        "message",
        {"id": "3EB0TCTOKENPEER0000000", "to": own_phone, "type": "text", "category": "peer"},
        [
            Node("participants", {}, [Node("to", {"jid": own_phone}, [enc])]),
            Node("tctoken", {}, b"x" * 32),
        ],
    )
    ack = await a.client.send_and_wait_ack(stanza, 10)
    assert ack.attr("error") == "479"
    await a.client.disconnect()


async def test_a_newly_linked_device_gets_the_tokens_its_account_holds(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    friend = await new_phone(admin)
    await a.client.send_text(Jid(friend, "s.whatsapp.net"), "first")
    await a.client.disconnect()
    # A second companion of the same account (linked by QR like the first).
    from simtools import client_for, scan

    from wahttp.wa.auth.store import MemoryAuthStore
    from wahttp.wa.client import Connected, QRCode

    store = MemoryAuthStore()
    client, events = client_for(sim, store)
    runner = asyncio.create_task(client.run())
    qr = await events.next(QRCode)
    assert isinstance(qr, QRCode)
    await scan(admin, a.number, qr.qr)
    await events.next(Connected)
    lid = str(sim.server.network.accounts[friend].phone.lid)
    await _until(lambda: lid in store._keys.get("tctoken", {}))
    await client.disconnect()
    await runner


async def test_a_retry_resend_needs_no_token(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    # Baileys' answer to a retry receipt: `<enc count>` beside `<participants>`, no tctoken.
    a = await linked_client(sim, admin)
    stranger = await _stranger(admin)
    to = f"{stranger}@s.whatsapp.net"
    enc = Node("enc", {"v": "2", "type": "msg", "count": "1"}, b"\x00" * 8)
    resend = Node(
        "message",
        {"id": "3EB0TCTOKENRETRY000000", "to": to, "type": "text"},
        [enc, Node("participants", {}, [Node("to", {"jid": to}, [enc])])],
    )
    ack = await a.client.send_and_wait_ack(resend, 10)
    assert ack.attr("error") is None
    first = Node(
        "message",
        {"id": "3EB0TCTOKENFIRST000000", "to": to, "type": "text"},
        [Node("participants", {}, [Node("to", {"jid": to}, [enc])])],
    )
    assert (await a.client.send_and_wait_ack(first, 10)).attr("error") == "463"
    await a.client.disconnect()
