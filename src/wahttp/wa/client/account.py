"""Account and contact notifications: `account_sync` (our own account changed on another
device) and `picture` (a contact's, a group's or our own profile picture changed).

`account_sync` children, as whatsmeow `handleAccountSyncNotification` and Baileys
`processNotification` read them:
- `<devices dhash><device jid [key-index]/>...</devices>`: our account's device list now (a
  companion linked or unlinked): it replaces the cached own list at once, so the next send
  reaches exactly these devices (whatsmeow `handleOwnDevicesNotification`);
- `<picture/>`: our own picture changed -> a ContactPicture event for our JID (whatsmeow);
- `<disappearing_mode duration t/>`, `<blocklist>`, `<privacy>`: logged (wahttp has no
  settings, block list or privacy API to update).
The push name is not in `account_sync`: a change of ours arrives through app state
(`setting_pushName` in `server_sync`), a contact's on each message (`notify`).

`picture`: `<notification type="picture" from t>` with `<set jid id author [hash]/>`,
`<add jid id author/>` or `<delete jid author/>` (whatsmeow `handlePictureNotification`;
Baileys emits `contacts.update` with imgUrl "changed"/"removed").
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import usync
from wahttp.wa.client.events import ContactPicture
from wahttp.wa.jid import Jid

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

PICTURE_CHILDREN = ("set", "add", "delete")


def own_devices(devices: Node) -> list[int]:
    """Device ids of a `<devices>` list (device 0, the phone, first)."""
    ids: set[int] = set()
    for child in devices.children("device"):
        jid = child.attr_jid("jid")
        if jid is not None:
            ids.add(jid.device or 0)
    return sorted(ids)


async def on_account_sync(client: Client, node: Node) -> None:
    for child in node.children():
        if child.tag == "devices":
            await _own_devices(client, child)
        elif child.tag == "picture":
            me = client.me.to_non_ad()
            await client.emit(ContactPicture(str(me), None, None, False, node.attr_int("t", 0)))
        else:
            client.log.debug("account_sync <%s> not handled", child.tag)


async def _own_devices(client: Client, devices: Node) -> None:
    me = client.me
    ids = own_devices(devices)
    if not ids:
        usync.invalidate(client, me.user)  # nothing usable: ask the server next time
        return
    usync.remember(client, me.user, time.monotonic(), ids)
    await client.signal.save_device_lists({me.user: ids})
    client.log.info("own device list changed: %d devices", len(ids))


def parse_pictures(node: Node) -> list[ContactPicture]:
    out = []
    for child in node.children():
        if child.tag not in PICTURE_CHILDREN:
            continue
        jid = child.attr("jid") or node.attr("from")
        if not jid:
            continue
        try:
            jid = str(Jid.parse(jid).to_non_ad())
        except ValueError:
            continue
        removed = child.tag == "delete"
        out.append(
            ContactPicture(
                jid=jid,
                author=child.attr("author"),
                picture_id=None if removed else child.attr("id"),
                removed=removed,
                timestamp=node.attr_int("t", 0),
            )
        )
    return out


async def on_picture(client: Client, node: Node) -> None:
    for event in parse_pictures(node):
        await client.emit(event)
