"""Device lists (usync): which devices a user has, and the user's LID, cached in the store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.jid import LID, S_WHATSAPP_NET, Jid

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

# How long a fetched device list is trusted before asking again (devices notifications
# invalidate it sooner).
DEVICE_TTL = 300.0
# Device lists kept in memory per client (the most recently fetched users); older ones are
# fetched again when needed.
DEVICE_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class UserDevices:
    user: Jid
    devices: list[int]
    lid: str | None


def usync_query(client: Client, users: list[Jid]) -> Node:
    query = Node("query", {}, [Node("devices", {"version": "2"}), Node("lid", {})])
    listing = Node("list", {}, [Node("user", {"jid": str(u)}) for u in users])
    usync = Node(
        "usync",
        {
            "context": "message",
            "mode": "query",
            "sid": client.new_id(),
            "last": "true",
            "index": "0",
        },
        [query, listing],
    )
    return Node("iq", {"to": S_WHATSAPP_NET, "type": "get", "xmlns": "usync"}, [usync])


def parse_usync(result: Node) -> list[UserDevices]:
    usync = result.child("usync")
    listing = usync.child("list") if usync is not None else None
    out = []
    for user in listing.children("user") if listing is not None else []:
        jid = user.attr_jid("jid")
        if jid is None:
            continue
        devices_node = user.child("devices")
        dev_list = devices_node.child("device-list") if devices_node is not None else None
        devices = []
        for dev in dev_list.children("device") if dev_list is not None else []:
            device_id = dev.attr_int("id", -1)
            # Companions without a key index cannot be addressed (Baileys and whatsmeow agree).
            if device_id == 0 or (device_id > 0 and dev.attr("key-index") is not None):
                devices.append(device_id)
        lid_node = user.child("lid")
        lid = lid_node.attr("val") if lid_node is not None else None
        out.append(UserDevices(jid, devices, lid))
    return out


async def fetch_devices(client: Client, users: list[Jid]) -> dict[str, list[int]]:
    """Device ids per user (PN user string): fresh ones from memory, the rest from the server
    (then saved in the store too, in Baileys' layout)."""
    ss = client.signal
    now = time.monotonic()
    wanted = {u.user: u for u in users}
    fresh: dict[str, list[int]] = {}
    for user in wanted:
        cached = client.device_cache.get(user)
        if cached is not None and now - cached[0] < DEVICE_TTL:
            fresh[user] = cached[1]
    missing = [wanted[u] for u in wanted if u not in fresh]
    if missing:
        result = await client.query(usync_query(client, missing))
        fetched: dict[str, list[int]] = {}
        for entry in parse_usync(result):
            fetched[entry.user.user] = entry.devices
            remember(client, entry.user.user, now, entry.devices)
            if entry.lid:
                lid = Jid.parse(entry.lid)
                if lid.server == LID:
                    await client.learn_lid(entry.user.user, lid.user, entry.devices)
        await ss.save_device_lists(fetched)
        fresh.update(fetched)
    return fresh


def remember(client: Client, user: str, at: float, devices: list[int]) -> None:
    cache = client.device_cache
    cache.pop(user, None)
    cache[user] = (at, devices)
    while len(cache) > DEVICE_CACHE_SIZE:
        cache.popitem(last=False)  # the least recently fetched


def invalidate(client: Client, user: str) -> None:
    client.device_cache.pop(user, None)


def device_jids(users: dict[str, list[int]], server: str = S_WHATSAPP_NET) -> list[Jid]:
    return [Jid(user, server, d) for user, devs in users.items() for d in devs]
