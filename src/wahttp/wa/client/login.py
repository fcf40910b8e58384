"""After <success>: record our LID, top up pre-keys, go active, validate the key bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import abprops, appstate, keepalive, prekeys, tctoken
from wahttp.wa.client.events import Connected
from wahttp.wa.errors import IQError
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


async def on_success(client: Client, node: Node) -> None:
    creds = client.creds
    lid = node.attr("lid")
    changed = not creds.registered
    if creds.me is not None and lid and creds.me.lid != lid:
        creds.me.lid = lid
        changed = True
    creds.registered = True
    if changed:  # an unchanged login (every restart of every session) writes nothing
        await client.save_creds()
    # The rest waits for server answers, which arrive through this same reader: run it aside.
    client.spawn(_finish_login(client), "wa-login")


async def _finish_login(client: Client) -> None:
    await prekeys.upload_if_needed(client)
    await set_passive(client, active=True)
    await digest(client)
    client.is_open = True
    keepalive.start(client)
    # AB props after open, aside (as Baileys' init queries): until they come, defaults hold.
    # Both jobs live as long as the connection (AB props re-fetched, expired tokens pruned).
    client.spawn(abprops.refresh(client), "wa-abprops")
    tctoken.start_pruning(client)
    appstate.resume_after_login(client)  # blob downloads that failed before a drop
    me = client.creds.me
    client.log.info("connection open")
    await client.emit(Connected(me.id if me else ""))


async def set_passive(client: Client, *, active: bool) -> None:
    tag = "active" if active else "passive"
    iq = Node("iq", {"to": S_WHATSAPP_NET, "xmlns": "passive", "type": "set"}, [Node(tag, {})])
    await client.query(iq)


async def digest(client: Client) -> None:
    """Ask the server for a digest of our key bundle; with none, upload pre-keys again."""
    iq = Node("iq", {"to": S_WHATSAPP_NET, "type": "get", "xmlns": "encrypt"}, [Node("digest", {})])
    try:
        result = await client.query(iq)
    except IQError as exc:
        client.log.warning("key bundle digest failed (%s)", exc.code)
        return
    if result.child("digest") is None:
        await prekeys.upload(client, client.config.initial_pre_keys)
