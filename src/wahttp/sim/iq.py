"""The iqs a client sends after login: pre-keys, passive/active, digest, ping, props, logout."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wahttp.sim import appstate, media, privacy
from wahttp.wa.binary import Node
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.network import Device
    from wahttp.sim.server import SimServer

log = logging.getLogger(__name__)
Handler = Callable[["SimServer", "ServerConnection", Node], Awaitable[Node | None]]


def result(node: Node, children: list[Node] | None = None) -> Node:
    return Node(
        "iq", {"from": S_WHATSAPP_NET, "type": "result", "id": node.attr("id") or ""}, children
    )


def error(node: Node, code: int, text: str) -> Node:
    attrs = {"from": S_WHATSAPP_NET, "type": "error", "id": node.attr("id") or ""}
    return Node("iq", attrs, [Node("error", {"code": str(code), "text": text})])


async def handle(server: SimServer, conn: ServerConnection, node: Node) -> None:
    children = node.children()
    key = (node.attr("xmlns") or "", children[0].tag if children else "")
    handler = HANDLERS.get(key)
    if conn.device is None and key[0] not in ("w:p", "md"):
        reply: Node | None = error(node, 401, "not-authorized")
    elif handler is None:
        log.debug("unimplemented iq %s", key)
        reply = error(node, 501, "feature-not-implemented")
    else:
        reply = await handler(server, conn, node)
    if reply is not None:
        await conn.send_node(reply)


async def _ping(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    conn.pings += 1
    return result(node)


async def _count(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    assert conn.device is not None
    return result(node, [Node("count", {"value": str(len(conn.device.pre_keys))})])


async def _upload(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    device = conn.device
    assert device is not None
    key_list = node.child("list")
    for key in key_list.children("key") if key_list is not None else []:
        key_id, value = key.child("id"), key.child("value")
        kid = key_id.content_bytes() if key_id is not None else None
        pub = value.content_bytes() if value is not None else None
        if kid is None or pub is None or len(pub) != 32:
            return error(node, 400, "bad-request")
        device.pre_keys[int.from_bytes(kid, "big")] = pub
    # With pre-keys up, the phone can reach the new companion: it shares the app-state keys.
    account = server.network.accounts.get(device.number)
    if account is not None and device.device_id not in account.app_state.shared_with:
        server.router.spawn(appstate.share_keys(server.router, account, device.device_id))
    return result(node)


async def _digest(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    device = conn.device
    assert device is not None
    spk = device.signed_pre_key
    digest = Node(
        "digest",
        {},
        [
            Node("type", {}, b"\x05"),
            Node("identity", {}, device.identity_public),
            Node("skey", {}, [Node("id", {}, spk.key_id.to_bytes(3, "big"))]),
            Node("list", {}, [Node("id", {}, k.to_bytes(3, "big")) for k in device.pre_keys]),
        ],
    )
    return result(node, [digest])


async def _passive(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    conn.active = node.children()[0].tag == "active"
    return result(node)


async def _props(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    return result(node, [Node("props", {"protocol": "1", "hash": "sim"})])


async def _blocklist(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    return result(node, [Node("list", {})])


async def _privacy(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    names = ("last", "online", "profile", "status", "groupadd", "readreceipts")
    cats = [Node("category", {"name": n, "value": "all"}) for n in names]
    return result(node, [Node("privacy", {}, cats)])


async def _remove_companion(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    device = conn.device
    if device is not None:
        server.network.remove_device(device.number, device.device_id)
        log.info("device %s logged out", device.jid)
    return result(node)


async def _link_code(server: SimServer, conn: ServerConnection, node: Node) -> Node | None:
    from wahttp.sim.pair_code import on_companion_reg

    return await on_companion_reg(server, conn, node)


async def _usync(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    usync = node.child("usync")
    listing = usync.child("list") if usync is not None else None
    users = []
    for user in listing.children("user") if listing is not None else []:
        jid = user.attr_jid("jid")
        account = server.network.account_by_user(jid.user) if jid is not None else None
        if account is None:
            users.append(Node("user", {"jid": user.attr("jid") or ""}, [Node("devices", {})]))
            continue
        devices = [Node("device", {"id": "0"})] + [
            Node("device", {"id": str(d.device_id), "key-index": str(d.key_index)})
            for d in account.devices.values()
        ]
        children = [
            Node("devices", {}, [Node("device-list", {}, devices)]),
            Node("lid", {"val": str(account.phone.lid)}),
        ]
        users.append(Node("user", {"jid": user.attr("jid") or ""}, children))
    reply = Node("usync", dict(usync.attrs) if usync else {}, [Node("list", {}, users)])
    return result(node, [reply])


async def _key_fetch(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    from wahttp.sim.phone_peer import bundle_for
    from wahttp.wa.client.keybundle import bundle_children

    key = node.child("key")
    users = []
    for user in key.children("user") if key is not None else []:
        found = server.router.resolve(user.attr_jid("jid"))
        bundle = await bundle_for(server.network, (found[0].number, found[1])) if found else None
        attrs = {"jid": user.attr("jid") or ""}
        if bundle is None:
            users.append(
                Node("user", attrs, [Node("error", {"code": "404", "text": "item-not-found"})])
            )
        else:
            users.append(Node("user", attrs, bundle_children(bundle)))
            if found is not None and found[1] != 0:
                await _warn_low_pre_keys(server, found[0].devices[found[1]])
    return result(node, [Node("list", {}, users)])


LOW_PRE_KEYS = 5


async def _warn_low_pre_keys(server: SimServer, device: Device) -> None:
    """Tell a device its one-time pre-keys run low, as the real server does."""
    if len(device.pre_keys) >= LOW_PRE_KEYS:
        return
    conn = server.network.connections.get(str(device.jid))
    if conn is not None:
        count = Node("count", {"value": str(len(device.pre_keys))})
        note = {"from": S_WHATSAPP_NET, "type": "encrypt", "id": conn.new_id(), "t": "0"}
        await conn.send_node(Node("notification", note, [count]))


async def _clean(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    from wahttp.sim.account import on_clean_iq

    return await on_clean_iq(server, conn, node)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("urn:xmpp:whatsapp:dirty", "clean"): _clean,
    ("usync", "usync"): _usync,
    ("encrypt", "key"): _key_fetch,
    ("md", "link_code_companion_reg"): _link_code,
    ("w:p", "ping"): _ping,
    ("urn:xmpp:ping", ""): _ping,
    ("encrypt", "count"): _count,
    ("encrypt", "registration"): _upload,
    ("encrypt", "digest"): _digest,
    ("passive", "active"): _passive,
    ("passive", "passive"): _passive,
    ("abt", "props"): privacy.on_props_iq,
    ("privacy", "tokens"): privacy.on_issue_iq,
    ("w", "props"): _props,
    ("blocklist", ""): _blocklist,
    ("privacy", "privacy"): _privacy,
    ("md", "remove-companion-device"): _remove_companion,
    ("w:sync:app:state", "sync"): appstate.on_sync_iq,
    ("w:m", "media_conn"): media.on_media_conn_iq,
}
