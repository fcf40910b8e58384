"""Info-broadcast stanzas (<ib>) and acks for stanzas no feature consumes yet.

The offline backlog: after a login the server announces what waited for us
(`<offline_preview count ...>`), we ask for it in batches (`<ib><offline_batch count/>`, 100
at a time as Baileys and WA Web do; unlike Baileys, which asks once, we ask again when a batch
is handled and more was announced), each backlog stanza comes with an `offline` attribute and
`<ib><offline count/>` ends it: an `OfflineSyncCompleted` event (Baileys:
`connection.update` `receivedPendingNotifications: true`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import appstate
from wahttp.wa.client.events import OfflineSyncCompleted
from wahttp.wa.close import CloseCode
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


async def on_ib(client: Client, node: Node) -> None:
    for child in node.children():
        handler = HANDLERS.get(child.tag)
        if handler is None:
            client.log.debug("ib <%s> not handled", child.tag)
        else:
            await handler(client, child)


async def _edge_routing(client: Client, child: Node) -> None:
    routing = child.child("routing_info")
    data = routing.content_bytes() if routing is not None else None
    if data:
        client.creds.routing_info = data
        await client.save_creds()


OFFLINE_BATCH = 100


@dataclass
class OfflineSync:
    """One stream's backlog: what the preview announced, what we asked for and got."""

    expected: int = 0
    asked: int = 0
    received: int = 0
    completed: bool = False
    # App-state collections the backlog's server_sync notifications named: synced once, when
    # the backlog is through (each of them alone would sync, and ask for keys, again and again).
    appstate: set[str] = field(default_factory=set)


async def _ask_batch(client: Client) -> None:
    client.offline_sync.asked += OFFLINE_BATCH
    batch = Node("offline_batch", {"count": str(OFFLINE_BATCH)})
    await client.send_node(Node("ib", {}, [batch]))


async def _offline_preview(client: Client, child: Node) -> None:
    # Collections deferred on a stream that dropped before its backlog ended come along.
    deferred = client.offline_sync.appstate if not client.offline_sync.completed else set()
    client.offline_sync = OfflineSync(expected=child.attr_int("count", 0), appstate=deferred)
    await _ask_batch(client)


async def offline_stanza_handled(client: Client) -> None:
    """A stanza marked `offline` was handled: ask for the next batch once this one is through
    and the preview announced more."""
    sync = client.offline_sync
    sync.received += 1
    if not sync.completed and sync.asked <= sync.received < sync.expected:
        await _ask_batch(client)


async def _downgrade_webclient(client: Client, child: Node) -> None:
    await client.close(CloseCode.MD_NOT_ENABLED, "multi-device not enabled for this account")


async def _offline(client: Client, child: Node) -> None:
    count = child.attr_int("count", 0)
    client.offline_sync.completed = True
    client.log.info("offline backlog delivered: %d stanzas", count)
    appstate.sync_deferred(client)
    await client.emit(OfflineSyncCompleted(count))


async def _clean(client: Client, dirty: Node) -> None:
    clean = Node(
        "clean", {"type": dirty.attr("type") or "", "timestamp": dirty.attr("timestamp") or ""}
    )
    iq = Node(
        "iq",
        {
            "to": S_WHATSAPP_NET,
            "type": "set",
            "xmlns": "urn:xmpp:whatsapp:dirty",
            "id": client.new_id(),
        },
        [clean],
    )
    await client.send_node(iq)


def ack_for(node: Node) -> Node:
    """The <ack> every notification, receipt and call needs, or the server redelivers it."""
    attrs = {"id": node.attr("id") or "", "class": node.tag, "to": node.attr("from") or ""}
    for key in ("participant", "recipient"):
        value = node.attr(key)
        if value:
            attrs[key] = value
    if node.tag != "message" and node.attr("type"):
        attrs["type"] = node.attr("type") or ""
    return Node("ack", attrs)


async def ack_only(client: Client, node: Node) -> None:
    await client.send_node(ack_for(node))


# <ib> child tag -> its handler (docs/stanzas.md lists each).
HANDLERS: dict[str, Callable[[Client, Node], Awaitable[None]]] = {
    "edge_routing": _edge_routing,
    "offline_preview": _offline_preview,
    "dirty": _clean,
    "downgrade_webclient": _downgrade_webclient,
    "offline": _offline,
}
