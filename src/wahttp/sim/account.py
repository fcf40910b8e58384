"""What the simulated server tells devices about accounts: `account_sync` (own device list,
own picture), `picture` (a contact's picture), `encrypt`+`<identity/>` (a contact's phone
registered again), and at login `<ib><dirty>` / `<ib><offline_preview>` before the backlog.

Stanza shapes follow what whatsmeow (`notification.go`, `connectionevents.go`) and Baileys 7
(`messages-recv.js`, `socket.js`) read from the real server:
- `<notification type="account_sync" from=<own PN> id t><devices dhash><device jid
  [key-index]/>...</devices></notification>` to the account's other companions when a device is
  linked or unlinked; `<picture/>` instead when the account's own picture changed;
- `<notification type="picture" from=<PN> id t><set jid id author/></notification>` (or
  `<delete jid author/>`) to the devices of the account's contacts;
- `<notification type="encrypt" from=<PN> id t><identity/></notification>` to the contacts'
  devices when the phone re-registers (new identity key: their sessions are void);
- `<ib><dirty type="account_sync" timestamp/></ib>` at login when an account_sync waited in the
  queue (the client answers `<iq xmlns="urn:xmpp:whatsapp:dirty" type="set"><clean type
  timestamp/>`), and `<ib><offline_preview count message notification receipt call
  appdata/></ib>` before a non-empty backlog (the client answers `<ib><offline_batch
  count/>`); `<ib><offline count/>` follows the backlog (offline.py).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.crypto import KeyPair
from wahttp.wa.jid import S_WHATSAPP_NET, Jid

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.network import Account
    from wahttp.sim.routing import Router
    from wahttp.sim.server import SimServer

DIRTY_ACCOUNT_SYNC = "account_sync"


def device_hash(jids: list[str]) -> str:
    """ "2:" + base64 (unpadded) of sha256 over the sorted device JIDs, first 6 bytes."""
    digest = hashlib.sha256("".join(sorted(jids)).encode()).digest()[:6]
    return "2:" + base64.b64encode(digest).decode().rstrip("=")


def _notification(kind: str, sender: Jid, children: list[Node]) -> Node:
    attrs = {
        "from": str(sender),
        "type": kind,
        "id": secrets.token_hex(8).upper(),
        "t": str(int(time.time())),
    }
    return Node("notification", attrs, children)


def devices_node(account: Account) -> Node:
    own = Jid(account.number, S_WHATSAPP_NET)
    children = [Node("device", {"jid": str(own)})]
    for device_id in sorted(account.devices):
        jid = Jid(account.number, S_WHATSAPP_NET, device_id)
        key_index = str(account.devices[device_id].key_index)
        children.append(Node("device", {"jid": str(jid), "key-index": key_index}))
    dhash = device_hash([c.attrs["jid"] for c in children])
    return Node("devices", {"dhash": dhash}, children)


async def _to_own_companions(
    router: Router, account: Account, child: Node, *, skip: int | None = None
) -> None:
    own = Jid(account.number, S_WHATSAPP_NET)
    for device_id in sorted(account.devices):
        if device_id == skip:
            continue
        key = (account.number, device_id)
        if str(router.device_jid(key)) not in router.network.connections:
            router.network.dirty.add(key)  # told at its next login: <ib><dirty>
        await router.deliver(key, _notification("account_sync", own, [child]))


async def devices_changed(router: Router, number: str, device_id: int) -> None:
    """A companion was linked or unlinked: the account's other companions get its list."""
    account = router.network.accounts.get(number)
    if account is not None:
        await _to_own_companions(router, account, devices_node(account), skip=device_id)


async def picture_changed(
    server: SimServer, account: Account, *, removed: bool
) -> dict[str, object]:
    """The phone set or removed its profile picture."""
    jid = str(Jid(account.number, S_WHATSAPP_NET))
    picture_id = None if removed else str(secrets.randbelow(10**10))
    attrs = {"jid": jid, "author": jid}
    if picture_id is not None:
        attrs["id"] = picture_id
    child = Node("delete" if removed else "set", attrs)
    sent = 0
    for contact in sorted(server.router.contacts.get(account.number, set())):
        target = server.network.accounts.get(contact)
        for device_id in sorted(target.devices) if target is not None else []:
            note = _notification("picture", Jid(account.number, S_WHATSAPP_NET), [child])
            await server.router.deliver((contact, device_id), note)
            sent += 1
    await _to_own_companions(server.router, account, Node("picture", {}))
    return {"pictureId": picture_id, "removed": removed, "notified": sent}


async def reregister(server: SimServer, account: Account) -> dict[str, object]:
    """The phone registers again (a new phone, a reinstall): a new identity key and no
    sessions; its contacts' devices get an identity-change notification."""
    from wahttp.sim.phone_peer import PhonePeer

    phone = account.phone
    phone.identity = KeyPair.generate()
    phone.registration_id = secrets.randbelow(16380) + 1
    old = account.phone_peer
    peer = PhonePeer(phone)
    peer.inbox, peer.sent = old.inbox, old.sent
    account.phone_peer = peer
    sent = 0
    for contact in sorted(server.router.contacts.get(account.number, set())):
        target = server.network.accounts.get(contact)
        for device_id in sorted(target.devices) if target is not None else []:
            note = _notification("encrypt", phone.jid, [Node("identity", {})])
            await server.router.deliver((contact, device_id), note)
            sent += 1
    server.network.reregistered += 1
    return {"number": account.number, "notified": sent}


async def before_backlog(server: SimServer, conn: ServerConnection) -> None:
    """At login: `<ib><dirty>` when an account_sync waited (the offline preview follows,
    offline.py)."""
    device = conn.device
    assert device is not None
    key = (device.number, device.device_id)
    if key in server.network.dirty:
        dirty = Node("dirty", {"type": DIRTY_ACCOUNT_SYNC, "timestamp": str(int(time.time()))})
        await conn.send_node(Node("ib", {"from": S_WHATSAPP_NET}, [dirty]))


async def on_clean_iq(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    """`<iq xmlns="urn:xmpp:whatsapp:dirty" type="set"><clean type timestamp/>`."""
    from wahttp.sim.iq import result

    clean = node.child("clean")
    if conn.device is not None and clean is not None:
        server.network.last_clean = {
            "device": str(conn.device.jid),
            "type": clean.attr("type") or "",
            "timestamp": clean.attr("timestamp") or "",
        }
    if conn.device is not None and clean is not None and clean.attr("type") == DIRTY_ACCOUNT_SYNC:
        server.network.dirty.discard((conn.device.number, conn.device.device_id))
        server.network.cleaned += 1
    return result(node)


def on_ib(server: SimServer, conn: ServerConnection, node: Node) -> None:
    """A client's `<ib>`: `<offline_batch count>` asks for the next batch of its backlog."""
    batch = node.child("offline_batch")
    if batch is not None:
        conn.offline_batches += 1
        if conn.offline is not None:
            conn.offline.ask(batch)
