"""Notifications: dispatched by type to the feature that owns them; every one is acked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import pair_code
from wahttp.wa.client.ib import ack_for

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


async def on_notification(client: Client, node: Node) -> None:
    kind = node.attr("type")
    if kind == "link_code_companion_reg":
        await pair_code.on_primary_hello(client, node)
        return
    await client.send_node(ack_for(node))
