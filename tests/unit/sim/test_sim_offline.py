"""The simulator's offline delivery (sim/offline.py): preview, batches of the size the client
asks for, each stanza marked `offline`, live stanzas unmarked meanwhile, the end mark, and a
lenient fallback for a client that never asks."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from wahttp.sim.offline import OfflineDelivery, OfflineStats
from wahttp.sim.server import SimServer
from wahttp.wa.binary import Node

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection


class FakeConn:
    def __init__(self) -> None:
        self.conn_id = 1
        self.stalled = False
        self.closed = asyncio.Event()
        self.sent: list[Node] = []
        self.changed = asyncio.Event()

    async def send_node(self, node: Node) -> None:
        self.sent.append(node)
        self.changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()


def _messages(n: int) -> list[Node]:
    return [Node("message", {"id": f"M{i}", "from": "1@s.whatsapp.net"}) for i in range(n)]


def _ib_child(node: Node) -> Node:
    assert node.tag == "ib"
    children = node.children()
    assert len(children) == 1
    return children[0]


async def test_batches_of_the_asked_size_then_the_end_mark() -> None:
    conn = FakeConn()
    backlog = [*_messages(4), Node("notification", {"id": "N", "type": "picture"})]
    delivery = OfflineDelivery(cast("ServerConnection", conn), backlog, wait=60)
    task = asyncio.create_task(delivery.run())
    await conn.until(1)
    preview = _ib_child(conn.sent[0])
    assert preview.tag == "offline_preview"
    assert preview.attrs == {
        "count": "5",
        "message": "4",
        "notification": "1",
        "receipt": "0",
        "call": "0",
        "appdata": "0",
    }
    await asyncio.sleep(0.05)
    assert len(conn.sent) == 1  # nothing before the client asks

    delivery.ask(Node("offline_batch", {"count": "2"}))
    await conn.until(3)
    await asyncio.sleep(0.05)
    assert len(conn.sent) == 3  # exactly the batch asked for
    assert [(n.attr("id"), n.attr("offline")) for n in conn.sent[1:]] == [("M0", "1"), ("M1", "2")]
    assert "offline" not in backlog[0].attrs  # the held copy stays unmarked

    delivery.ask(Node("offline_batch", {"count": "nope"}))  # ignored
    delivery.ask(Node("offline_batch", {"count": "100"}))
    await task
    assert [n.attr("offline") for n in conn.sent[3:6]] == ["3", "4", "5"]
    done = _ib_child(conn.sent[6])
    assert done.tag == "offline" and done.attrs == {"count": "5"}
    assert len(conn.sent) == 7
    assert delivery.stats == OfflineStats(batches_asked=3, delivered=5, completed=1, lenient=0)


async def test_a_client_that_never_asks_gets_the_backlog_anyway() -> None:
    conn = FakeConn()
    delivery = OfflineDelivery(cast("ServerConnection", conn), _messages(3), wait=0.05)
    await asyncio.wait_for(delivery.run(), 10)
    assert [n.tag for n in conn.sent] == ["ib", "message", "message", "message", "ib"]
    assert delivery.stats.lenient == 1


async def test_nothing_waiting_is_only_the_end_mark() -> None:
    conn = FakeConn()
    await OfflineDelivery(cast("ServerConnection", conn), [], wait=60).run()
    assert len(conn.sent) == 1 and _ib_child(conn.sent[0]).attrs == {"count": "0"}


async def test_live_stanzas_go_out_unmarked_while_the_backlog_waits() -> None:
    server = SimServer()
    ours = server.network.create_account()
    key = (ours.number, 1)
    for stanza in _messages(2):
        await server.router.deliver(key, stanza)  # offline: queued
    conn = FakeConn()
    server.network.connections[str(server.router.device_jid(key))] = conn  # type: ignore[assignment]
    backlog = server.router.take_backlog(key)
    assert len(server.router.mailbox(key).pending) == 2  # held before the first goes out
    delivery = OfflineDelivery(cast("ServerConnection", conn), backlog, wait=60)
    task = asyncio.create_task(delivery.run())
    await conn.until(1)
    await server.router.deliver(key, Node("message", {"id": "LIVE", "from": "2@s.whatsapp.net"}))
    assert conn.sent[-1].attr("id") == "LIVE" and "offline" not in conn.sent[-1].attrs
    delivery.ask(Node("offline_batch", {"count": "100"}))
    await task
    assert [(n.attr("id"), n.attr("offline")) for n in conn.sent[2:4]] == [("M0", "1"), ("M1", "2")]
    assert len(server.router.mailbox(key).pending) == 3
