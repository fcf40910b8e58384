"""Our client's side of the offline backlog (ib.py): it asks for 100 in answer to the preview
and for the next 100 once a batch is handled and the preview announced more, never beyond."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from wahttp.wa.binary import Node
from wahttp.wa.client import ib

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


class FakeClient:
    def __init__(self) -> None:
        self.offline_sync = ib.OfflineSync()
        self.sent: list[Node] = []

    async def send_node(self, node: Node) -> None:
        self.sent.append(node)


def _asks(client: FakeClient) -> list[str | None]:
    return [n.children()[0].attr("count") for n in client.sent if n.tag == "ib"]


async def test_next_batch_is_asked_when_one_is_handled_and_more_were_announced() -> None:
    fake = FakeClient()
    client = cast("Client", fake)
    preview = Node("ib", {}, [Node("offline_preview", {"count": "250", "message": "250"})])
    await ib.on_ib(client, preview)
    assert _asks(fake) == ["100"]
    for _ in range(99):
        await ib.offline_stanza_handled(client)
    assert _asks(fake) == ["100"]
    await ib.offline_stanza_handled(client)  # the 100th
    assert _asks(fake) == ["100", "100"]
    for _ in range(100):
        await ib.offline_stanza_handled(client)
    assert _asks(fake) == ["100", "100", "100"]
    for _ in range(50):  # the last 50: nothing more was announced
        await ib.offline_stanza_handled(client)
    assert _asks(fake) == ["100", "100", "100"]


async def test_a_backlog_of_exactly_one_batch_needs_one_ask() -> None:
    fake = FakeClient()
    client = cast("Client", fake)
    await ib.on_ib(client, Node("ib", {}, [Node("offline_preview", {"count": "100"})]))
    for _ in range(100):
        await ib.offline_stanza_handled(client)
    assert _asks(fake) == ["100"]
