"""The simulator keeps each stanza pending until its own ack: an <ack> names its stanza by class,
id, to (the stanza's from), participant and type, as the real server matches it, so one
receipt's ack never clears another receipt of the same message id."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, cast

from wahttp.sim.routing import Router
from wahttp.sim.server import SimServer
from wahttp.sim.state import restore_state, snapshot
from wahttp.wa.binary import Node
from wahttp.wa.client.ib import ack_for

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection


class FakeConn:
    """Stands in for a device's stream: records what the server sends it."""

    def __init__(self) -> None:
        self.stalled = False
        self.closed = asyncio.Event()
        self.sent: list[Node] = []

    async def send_node(self, node: Node) -> None:
        self.sent.append(node)


def baileys_ack(node: Node) -> Node:
    """The ack Baileys 7 sends (Utils/stanza-ack.js buildAckStanza), attribute by attribute."""
    attrs = {"id": node.attrs["id"], "to": node.attrs["from"], "class": node.tag}
    for key in ("participant", "recipient", "type"):
        if node.attr(key):
            attrs[key] = node.attrs[key]
    if node.tag == "message":
        attrs["from"] = "15550000001:5@s.whatsapp.net"
    return Node("ack", attrs)


def _setup() -> tuple[SimServer, Router, tuple[str, int], str, str]:
    server = SimServer()
    router = server.router
    ours = server.network.create_account()
    friend = server.network.create_account()
    other = server.network.create_account()
    key = (ours.number, 1)
    return server, router, key, f"{friend.number}@s.whatsapp.net", f"{other.number}@s.whatsapp.net"


def _connect(router: Router, key: tuple[str, int]) -> FakeConn:
    conn = FakeConn()
    router.network.connections[str(router.device_jid(key))] = conn  # type: ignore[assignment]
    return conn


def _receipts(friend: str, other: str) -> list[Node]:
    """Four receipts of one message id: delivered and read by the friend, delivered to another
    account, and our own phone's 'sender' copy; plus a message that happens to share the id."""
    return [
        Node("receipt", {"from": friend, "id": "3EB0AA", "t": "1"}),
        Node("receipt", {"from": friend, "id": "3EB0AA", "t": "2", "type": "read"}),
        Node("receipt", {"from": other, "id": "3EB0AA", "t": "3"}),
        Node("receipt", {"from": other, "id": "3EB0AA", "t": "4", "type": "sender"}),
        Node("message", {"from": friend, "id": "3EB0AA", "t": "5", "type": "text"}),
    ]


async def test_each_ack_clears_only_its_own_stanza() -> None:
    _, router, key, friend, other = _setup()
    conn = _connect(router, key)
    stanzas = _receipts(friend, other)
    for stanza in stanzas:
        await router.deliver(key, stanza)
    assert conn.sent == stanzas
    assert len(router.mailbox(key).pending) == 5  # none replaced another

    # Our client's ack of the read receipt, then Baileys' ack of the 'sender' one.
    assert router.acked(key, ack_for(stanzas[1]))
    assert router.acked(key, baileys_ack(stanzas[3]))
    assert not router.acked(key, ack_for(stanzas[1]))  # acked once only
    assert list(router.mailbox(key).pending.values()) == [stanzas[0], stanzas[2], stanzas[4]]

    # Reconnecting: exactly the unacked ones come again, in their order.
    again = _connect(router, key)
    assert await router.flush(key, cast("ServerConnection", again)) == 3
    assert again.sent == [stanzas[0], stanzas[2], stanzas[4]]
    assert router.acked(key, baileys_ack(stanzas[4]))  # Baileys' message ack has type and from
    assert router.acked(key, ack_for(stanzas[2]))
    assert list(router.mailbox(key).pending.values()) == [stanzas[0]]


async def test_a_receipt_clears_the_message_it_reports_on_only() -> None:
    _, router, key, friend, other = _setup()
    _connect(router, key)
    message = Node("message", {"from": friend, "id": "M1", "type": "text"})
    stranger = Node("message", {"from": other, "id": "M1", "type": "text"})
    receipt = Node("receipt", {"from": friend, "id": "M1"})
    for stanza in (message, stranger, receipt):
        await router.deliver(key, stanza)
    # Our device's delivery receipt for the friend's message (Baileys addresses it to the chat).
    router.receipted(key, Node("receipt", {"id": "M1", "to": friend.replace("@", ":0@")}), ["M1"])
    assert list(router.mailbox(key).pending.values()) == [stranger, receipt]


async def test_unacked_receipts_survive_a_state_file_restart() -> None:
    server, router, key, friend, other = _setup()
    _connect(router, key)
    stanzas = _receipts(friend, other)
    for stanza in stanzas:
        await router.deliver(key, stanza)
    router.acked(key, ack_for(stanzas[3]))

    data = json.loads(json.dumps(await snapshot(server)))
    restarted = SimServer()
    await restore_state(restarted, data)
    conn = _connect(restarted.router, key)
    assert await restarted.router.flush(key, cast("ServerConnection", conn)) == 4
    assert [(n.tag, n.attr("from"), n.attr("type")) for n in conn.sent] == [
        (s.tag, s.attr("from"), s.attr("type")) for s in stanzas if s is not stanzas[3]
    ]
    # Acking the delivery receipt leaves the read receipt for it pending.
    restarted.router.acked(key, ack_for(conn.sent[0]))
    assert [n.attr("type") for n in restarted.router.mailbox(key).pending.values()] == [
        "read",
        None,
        "text",
    ]
