"""Notifications: dispatched by type to the feature that owns them; every one is acked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


async def _devices(client: Client, node: Node) -> None:
    # A user's device list changed: fetch it again before the next send.
    who = node.attr_jid("from")
    if who is not None:
        usync.invalidate(client, who.user)


async def _encrypt(client: Client, node: Node) -> None:
    count = node.child("count")
    if count is not None:
        # The server is running out of our one-time pre-keys.
        if count.attr_int("value", 0) < client.config.min_pre_keys:
            client.spawn(prekeys.upload(client, 50), "wa-prekeys")
    elif node.child("identity") is not None:
        # The contact's identity changed (new phone): its sessions are void.
        who = node.attr_jid("from")
        if who is not None and not who.device and who.user not in _own_users(client):
            usync.invalidate(client, who.user)
            await forget_user_sessions(client, who)
            if not node.attr("offline"):  # Baileys does not re-issue while the backlog replays
                await tctoken.reissue_after_identity_change(client, who)


Handler = Callable[["Client", Node], Awaitable[None]]

# type -> the feature that owns it (docs/stanzas.md lists each; tests/unit/wa/test_stanza_table
# keeps the two in step). Each is acked here once its handler returns.
HANDLERS: dict[str, Handler] = {
    # A contact let us message them: keep its token for our next 1:1 send to it.
    "privacy_token": tctoken.on_notification,
    # App state changed elsewhere (the phone): fetch the named collections' patches.
    "server_sync": appstate.on_server_sync,
    "devices": _devices,
    "encrypt": _encrypt,
    # Our account changed elsewhere: our device list, our picture, settings.
    "account_sync": account.on_account_sync,
    "picture": account.on_picture,
}
# Handlers that send the ack themselves (whatever happens).
SELF_ACKED: dict[str, Handler] = {"link_code_companion_reg": pair_code.on_primary_hello}
# Types we know and only ack, for now (docs/stanzas.md says why); others are also logged.
ACKED_ONLY = frozenset({"w:gp2", "mediaretry", "mex", "business", "newsletter", "status"})


async def on_notification(client: Client, node: Node) -> None:
    kind = node.attr("type") or ""
    if kind in SELF_ACKED:
        await SELF_ACKED[kind](client, node)
        return
    handler = HANDLERS.get(kind)
    if handler is not None:
        await handler(client, node)
    elif kind not in ACKED_ONLY:
        client.log.debug("notification type %r not handled", kind)
    await client.send_node(ack_for(node))


def _own_users(client: Client) -> set[str]:
    me = client.creds.me
    if me is None:
        return set()
    users = {Jid.parse(me.id).user}
    if me.lid:
        users.add(Jid.parse(me.lid).user)
    return users
