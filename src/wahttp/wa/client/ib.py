"""Info-broadcast stanzas (<ib>) and acks for stanzas no feature consumes yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


async def on_ib(client: Client, node: Node) -> None:
    for child in node.children():
        if child.tag == "edge_routing":
            routing = child.child("routing_info")
            data = routing.content_bytes() if routing is not None else None
            if data:
                client.creds.routing_info = data
                await client.save_creds()
        elif child.tag == "offline_preview":
            await client.send_node(Node("ib", {}, [Node("offline_batch", {"count": "100"})]))
        elif child.tag == "dirty":
            await _clean(client, child)
        elif child.tag == "downgrade_webclient":
            await client.close(411, "multi-device not enabled for this account")
        elif child.tag == "offline":
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
