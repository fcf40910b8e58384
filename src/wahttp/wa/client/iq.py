"""Server-initiated iqs: QR refs (pair-device), pair-success and the server's pings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import pair
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


async def on_iq(client: Client, node: Node) -> None:
    child = node.children()[0] if node.children() else None
    if node.attr("xmlns") == "urn:xmpp:ping" or (child is not None and child.tag == "ping"):
        # The server checks we are alive; an unanswered ping makes it drop us.
        await client.send_node(result_for(node))
    elif child is not None and child.tag == "pair-device":
        await pair.on_pair_device(client, node, child)
    elif child is not None and child.tag == "pair-success":
        await pair.on_pair_success(client, node, child)
    else:
        client.log.debug("unhandled iq <%s>", child.tag if child else "")


def result_for(node: Node) -> Node:
    return Node("iq", {"to": S_WHATSAPP_NET, "type": "result", "id": node.attr("id") or ""})
