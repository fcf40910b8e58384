"""Info-broadcast stanzas (<ib>) and acks for stanzas no feature consumes yet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
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


async def _offline_preview(client: Client, child: Node) -> None:
    await client.send_node(Node("ib", {}, [Node("offline_batch", {"count": "100"})]))


async def _downgrade_webclient(client: Client, child: Node) -> None:
    await client.close(CloseCode.MD_NOT_ENABLED, "multi-device not enabled for this account")


async def _offline(client: Client, child: Node) -> None:
    client.log.debug("offline backlog delivered (%s)", child.attr("count"))


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
