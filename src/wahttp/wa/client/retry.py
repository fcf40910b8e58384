"""Retry receipts: ask a sender to re-encrypt what we could not decrypt, and answer such asks."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import e2e, send
from wahttp.wa.client.events import UndecryptableMessage
from wahttp.wa.client.keybundle import (
    KEY_BUNDLE_TYPE,
    BundleError,
    key_node,
    parse_bundle,
    skey_node,
)
from wahttp.wa.client.prekeys import generate
from wahttp.wa.jid import Jid

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

MAX_RETRIES = 5


async def request_resend(client: Client, node: Node, sender: Jid, chat: Jid) -> None:
    """Send <receipt type=retry> with our keys, so the sender can start a fresh session."""
    message_id = node.attr("id") or ""
    count = client.retry_counts.get(message_id, 0) + 1
    client.retry_counts[message_id] = count
    await client.emit(UndecryptableMessage(message_id, str(chat), str(sender), count))
    if count > MAX_RETRIES:
        client.log.warning("giving up on %s after %d retries", message_id, MAX_RETRIES)
        await client.send_node(
            Node("ack", {"id": message_id, "class": "message", "to": node.attr("from") or ""})
        )
        return
    creds = client.creds
    one_time = await generate(client, 1)
    key_id, pair = next(iter(one_time.items()))
    spk = creds.signed_pre_key
    keys = Node(
        "keys",
        {},
        [
            Node("type", {}, KEY_BUNDLE_TYPE),
            Node("identity", {}, creds.signed_identity_key.public),
            key_node(key_id, pair.public),
            skey_node(spk.key_id, spk.key_pair.public, spk.signature),
            send.device_identity(client),
        ],
    )
    attrs = {"id": message_id, "to": node.attr("from") or "", "type": "retry"}
    if node.attr("participant"):
        attrs["participant"] = node.attr("participant") or ""
    retry = Node(
        "retry",
        {
            "count": str(count),
            "id": message_id,
            "t": node.attr("t") or str(int(time.time())),
            "v": "1",
        },
    )
    registration = Node("registration", {}, creds.registration_id.to_bytes(4, "big"))
    await client.send_node(Node("receipt", attrs, [retry, registration, keys]))


async def on_retry_receipt(client: Client, node: Node) -> None:
    """A device could not decrypt our message: rebuild its session if it sent keys, resend."""
    device = node.attr_jid("participant") or node.attr_jid("from")
    retry = node.child("retry")
    if device is None or retry is None:
        return
    count = retry.attr_int("count", 1)
    keys = node.child("keys")
    registration = node.child("registration")
    if keys is not None and registration is not None:
        merged = Node("user", {}, [registration, *keys.children()])
        try:
            bundle = parse_bundle(merged, device)
        except BundleError:
            client.log.warning("retry receipt with unusable keys from %s", device)
            return
        async with client.e2e_lock:
            await e2e.start_session(client.signal, device, bundle)
    elif count >= 2:
        async with client.e2e_lock:
            await client.signal.forget_identity(await client.signal.address(device))
        await send.ensure_sessions(client, [device])  # a bundle query: not under the lock
    for message_id in [node.attr("id") or "", *_listed_ids(node)]:
        await send.resend_to(client, device, message_id, count)


def _listed_ids(node: Node) -> list[str]:
    listing = node.child("list")
    return [i.attr("id") or "" for i in listing.children("item")] if listing is not None else []
