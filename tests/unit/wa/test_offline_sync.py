"""Our client's side of the offline backlog (ib.py): it asks for 100 in answer to the preview
and for the next 100 once a batch is handled and the preview announced more, never beyond."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

from wahttp.wa.binary import Node
from wahttp.wa.client import appstate, ib

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


class SyncingClient(FakeClient):
    """Records the app-state syncs it is asked to start (the jobs themselves are not run)."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[str] = []
        self.log = logging.getLogger("test")
        self.emitted: list[object] = []

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self.jobs.append(name)
        coro.close()

    async def emit(self, event: object) -> None:
        self.emitted.append(event)


def _server_sync(*names: str, offline: bool) -> Node:
    attrs = {"type": "server_sync", "from": "s.whatsapp.net", "id": "1"}
    if offline:
        attrs["offline"] = "0"
    return Node("notification", attrs, [Node("collection", {"name": n}) for n in names])


async def test_the_backlogs_server_syncs_become_one_sync_when_it_ends() -> None:
    """Each server_sync of the backlog would sync (and ask for missing keys) on its own: they
    are collected and synced once at <ib><offline>; a live one syncs at once."""
    fake = SyncingClient()
    client = cast("Client", fake)
    await ib.on_ib(client, Node("ib", {}, [Node("offline_preview", {"count": "2"})]))
    await appstate.on_server_sync(client, _server_sync("regular", offline=True))
    await appstate.on_server_sync(client, _server_sync("regular", "regular_low", offline=True))
    assert fake.jobs == []
    assert fake.offline_sync.appstate == {"regular", "regular_low"}
    await ib.on_ib(client, Node("ib", {}, [Node("offline", {"count": "2"})]))
    assert fake.jobs == ["wa-appstate"] and fake.offline_sync.appstate == set()
    await appstate.on_server_sync(client, _server_sync("regular", offline=False))
    assert fake.jobs == ["wa-appstate", "wa-appstate"]


async def test_collections_deferred_on_a_dropped_stream_come_to_the_next_backlog() -> None:
    fake = SyncingClient()
    client = cast("Client", fake)
    await ib.on_ib(client, Node("ib", {}, [Node("offline_preview", {"count": "1"})]))
    await appstate.on_server_sync(client, _server_sync("regular_high", offline=True))
    # The stream drops before <ib><offline>; the next login announces its own backlog.
    await ib.on_ib(client, Node("ib", {}, [Node("offline_preview", {"count": "0"})]))
    assert fake.offline_sync.appstate == {"regular_high"}
    await ib.on_ib(client, Node("ib", {}, [Node("offline", {"count": "0"})]))
    assert fake.jobs == ["wa-appstate"]
