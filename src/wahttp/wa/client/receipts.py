"""Receipts for what we sent (delivered, read, played, retry) and the server's acks."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import retry
from wahttp.wa.client.events import MessageAck
from wahttp.wa.client.ib import ack_for
from wahttp.wa.errors import ConnectionClosed

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

# Receipt types that move a sent message's status. Others ("sender": our own device got its
# copy; "read-self": we read it elsewhere; "peer_msg", "hist_sync") say nothing of the recipient.
STATUS_BY_TYPE = {"": "delivered", "inactive": "delivered", "read": "read", "played": "played"}


async def on_receipt(client: Client, node: Node) -> None:
    kind = node.attr("type") or ""
    if kind == "retry":
        # Answering may fetch a bundle from the server, whose answer this reader task must be
        # free to read: run it aside.
        client.spawn(retry.on_retry_receipt(client, node), "wa-retry")
        await client.send_node(ack_for(node))
    elif kind in STATUS_BY_TYPE:
        # Recording the status waits on the owner (its database): not in the reader, which
        # must pass on the server's acks of our sends meanwhile. Acked once recorded.
        await client.receipts.put(lambda: _record_status(client, node, STATUS_BY_TYPE[kind]))
    else:
        await client.send_node(ack_for(node))


async def _record_status(client: Client, node: Node, status: str) -> None:
    ids = [node.attr("id") or ""]
    listing = node.child("list")
    if listing is not None:
        ids += [i.attr("id") or "" for i in listing.children("item")]
    device = node.attr("participant") or node.attr("from") or ""
    chat_jid = node.attr_jid("recipient") or node.attr_jid("from")
    chat = str(chat_jid.to_non_ad()) if chat_jid is not None else ""
    try:
        await client.emit(
            MessageAck(tuple(ids), chat, device, status, node.attr_int("t", int(time.time())))
        )
    finally:
        with contextlib.suppress(ConnectionClosed):  # closed meanwhile: it comes again
            await client.send_node(ack_for(node))


def read_receipt(chat: str, ids: list[str], sender: str | None = None) -> Node:
    """Tell the sender we read these messages (the first id in attrs, the rest listed)."""
    attrs = {"id": ids[0], "to": chat, "type": "read", "t": str(int(time.time()))}
    if sender and sender != chat:
        attrs["participant"] = sender
    items = [Node("item", {"id": i}) for i in ids[1:]]
    return Node("receipt", attrs, [Node("list", {}, items)] if items else None)


async def on_ack(client: Client, node: Node) -> None:
    """The server's <ack class=message> for a stanza we sent resolves its waiter."""
    if node.attr("class") == "message":
        client.resolve_ack(node.attr("id") or "", node)
