"""Notifications: dispatched by type to the feature that owns them; every one is acked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import account, appstate, pair_code, prekeys, tctoken, usync
from wahttp.wa.client.ib import ack_for
from wahttp.wa.jid import Jid

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


async def forget_user_sessions(client: Client, user: Jid) -> None:
    ss = client.signal
    devices = (await ss.device_lists([user.user])).get(user.user, [0])
    async with client.e2e_lock:
        for device in devices:
            await ss.forget_identity(await ss.address(Jid(user.user, user.server, device)))


async def on_notification(client: Client, node: Node) -> None:
    kind = node.attr("type")
    if kind == "link_code_companion_reg":
        await pair_code.on_primary_hello(client, node)
        return
    if kind == "privacy_token":
        # A contact let us message them: keep its token for our next 1:1 send to it.
        await tctoken.on_notification(client, node)
    elif kind == "server_sync":
        # App state changed elsewhere (the phone): fetch the named collections' patches.
        await appstate.on_server_sync(client, node)
    elif kind == "devices":
        # A user's device list changed: fetch it again before the next send.
        who = node.attr_jid("from")
        if who is not None:
            usync.invalidate(client, who.user)
    elif kind == "encrypt" and node.child("count") is not None:
        # The server is running out of our one-time pre-keys.
        count = node.child("count")
        if count is not None and count.attr_int("value", 0) < client.config.min_pre_keys:
            client.spawn(prekeys.upload(client, 50), "wa-prekeys")
    elif kind == "encrypt" and node.child("identity") is not None:
        # The contact's identity changed (new phone): its sessions are void.
        who = node.attr_jid("from")
        if who is not None and not who.device and who.user not in _own_users(client):
            usync.invalidate(client, who.user)
            await forget_user_sessions(client, who)
            if not node.attr("offline"):  # Baileys does not re-issue while the backlog replays
                await tctoken.reissue_after_identity_change(client, who)
    elif kind == "account_sync":
        # Our account changed elsewhere: our device list, our picture, settings.
        await account.on_account_sync(client, node)
    elif kind == "picture":
        await account.on_picture(client, node)
    await client.send_node(ack_for(node))


def _own_users(client: Client) -> set[str]:
    me = client.creds.me
    if me is None:
        return set()
    users = {Jid.parse(me.id).user}
    if me.lid:
        users.add(Jid.parse(me.lid).user)
    return users
