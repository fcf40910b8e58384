"""One-time pre-keys: count what the server holds, generate and upload more when it runs low."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client.keybundle import BundleError, parse_bundle
from wahttp.wa.crypto import KeyPair
from wahttp.wa.jid import S_WHATSAPP_NET, Jid
from wahttp.wa.signal import PreKeyBundle

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

CATEGORY = "pre-key"
KEY_BUNDLE_TYPE = b"\x05"


async def server_count(client: Client) -> int:
    iq = Node("iq", {"xmlns": "encrypt", "type": "get", "to": S_WHATSAPP_NET}, [Node("count", {})])
    result = await client.query(iq)
    count = result.child("count")
    value = count.attr("value") if count is not None else None
    return int(value) if value and value.isdigit() else 0


async def upload_if_needed(client: Client) -> None:
    count = await server_count(client)
    if count == 0:
        await upload(client, client.config.initial_pre_keys)
    elif count <= client.config.min_pre_keys:
        await upload(client, 50)


async def generate(client: Client, count: int) -> dict[int, KeyPair]:
    """New pre-keys, stored and counted in creds before anyone can see them.

    The ids are taken before the first await: a retry receipt's key and an upload made at the
    same time must not get the same id (the later write would replace the key the first one
    handed out, and the peer's pkmsg built on it would fail its MAC)."""
    creds = client.creds
    first = creds.next_pre_key_id
    creds.next_pre_key_id = first + count
    keys = {first + i: KeyPair.generate() for i in range(count)}
    await client.store.set(
        {CATEGORY: {str(k): {"private": v.private, "public": v.public} for k, v in keys.items()}}
    )
    await client.save_creds()
    return keys


async def upload(client: Client, count: int) -> None:
    keys = await generate(client, count)
    creds = client.creds
    spk = creds.signed_pre_key
    node = Node(
        "iq",
        {"xmlns": "encrypt", "type": "set", "to": S_WHATSAPP_NET},
        [
            Node("registration", {}, creds.registration_id.to_bytes(4, "big")),
            Node("type", {}, KEY_BUNDLE_TYPE),
            Node("identity", {}, creds.signed_identity_key.public),
            Node("list", {}, [_key_node(k, v) for k, v in keys.items()]),
            Node(
                "skey",
                {},
                [
                    Node("id", {}, spk.key_id.to_bytes(3, "big")),
                    Node("value", {}, spk.key_pair.public),
                    Node("signature", {}, spk.signature),
                ],
            ),
        ],
    )
    await client.query(node)
    creds.first_unuploaded_pre_key_id = creds.next_pre_key_id
    await client.save_creds()
    client.log.info("uploaded %d pre-keys", count)


def _key_node(key_id: int, pair: KeyPair) -> Node:
    return Node(
        "key", {}, [Node("id", {}, key_id.to_bytes(3, "big")), Node("value", {}, pair.public)]
    )


async def fetch_bundles(client: Client, devices: list[Jid]) -> dict[str, PreKeyBundle]:
    """Pre-key bundles for these device JIDs, keyed by the JID string asked for."""
    users = [Node("user", {"jid": str(d), "reason": "identity"}) for d in devices]
    iq = Node(
        "iq", {"xmlns": "encrypt", "type": "get", "to": S_WHATSAPP_NET}, [Node("key", {}, users)]
    )
    result = await client.query(iq)
    listing = result.child("list")
    bundles: dict[str, PreKeyBundle] = {}
    for user in listing.children("user") if listing is not None else []:
        jid = user.attr_jid("jid")
        if jid is None or user.child("error") is not None:
            continue
        try:
            bundles[user.attr("jid") or ""] = parse_bundle(user, jid)
        except BundleError:
            client.log.warning("server sent an incomplete bundle for %s", jid)
    return bundles
