"""Incoming calls (`<call>`): an offer becomes a CallOffer event; WAHTTP_REJECT_CALLS rejects it.

wahttp does not do voice or video (no WebRTC): it only sees the signalling. The server sends
`<call from t [offline]><offer call-id call-creator [caller_pn] [group-jid] [type=group]>` with
`<audio>`, `<video>` (a video call), `<net>`, `<encopt>`... children; later stanzas of the same
call (`terminate`, `reject`, `accept`, `preaccept`, `transport`, `relaylatency`) share its
call-id. Every `<call>` is acked (Baileys `handleCall`, whatsmeow `handleCallEvent`).

An offer with the `offline` attribute came from the backlog after a login: the call rang while
we were away and is over, so WAHTTP_REJECT_CALLS leaves it alone.

Rejecting is `<call id from=<us> to=<caller>><reject call-id call-creator=<caller> count="0"/>`
(Baileys `rejectCall`, whatsmeow `RejectCall`); the server acks it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client.events import CallOffer
from wahttp.wa.client.ib import ack_for
from wahttp.wa.client.messages import new_message_id
from wahttp.wa.errors import WAError
from wahttp.wa.jid import Jid

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

OFFER_TAGS = ("offer", "offer_notice")


def parse_offer(node: Node) -> CallOffer | None:
    """The CallOffer a `<call>` carries, or None when it is another call stanza."""
    children = node.children()
    info = children[0] if children else None
    if info is None or info.tag not in OFFER_TAGS:
        return None
    call_id = info.attr("call-id") or ""
    caller = info.attr("from") or info.attr("call-creator") or node.attr("from") or ""
    if not call_id or not caller:
        return None
    group = info.attr("group-jid")
    return CallOffer(
        id=call_id,
        from_=caller,
        chat=node.attr("from") or caller,
        caller_pn=info.attr("caller_pn"),
        is_video=info.child("video") is not None,
        is_group=info.attr("type") == "group" or bool(group),
        group_jid=group,
        timestamp=node.attr_int("t", 0),
        offline=bool(node.attr("offline")),
    )


def reject_node(me: Jid, caller: str, call_id: str, stanza_id: str) -> Node:
    creator = str(Jid.parse(caller).to_non_ad())
    reject = Node("reject", {"call-id": call_id, "call-creator": creator, "count": "0"})
    attrs = {"id": stanza_id, "from": str(me.to_non_ad()), "to": creator}
    return Node("call", attrs, [reject])


async def reject(client: Client, caller: str, call_id: str) -> None:
    """Decline a call (the caller's phone stops ringing on our side)."""
    await client.send_node(reject_node(client.me, caller, call_id, new_message_id()))


async def on_call(client: Client, node: Node) -> None:
    try:
        offer = parse_offer(node)
        if offer is not None:
            # A call from the offline backlog rang while we were away: it no longer rings
            # (Baileys marks it `offline` and upserts it as 'append', not 'notify'), so there is
            # nothing to reject; the event still tells the owner about it.
            rejecting = client.config.reject_calls and not offer.offline
            kind = "video" if offer.is_video else "voice"
            if offer.offline:
                client.log.info("missed %s call (while offline)", kind)
            else:
                client.log.info("incoming %s call%s", kind, " (rejecting)" if rejecting else "")
            if rejecting:
                with contextlib.suppress(WAError, ValueError):
                    await reject(client, offer.from_, offer.id)
                    offer = dataclasses.replace(offer, rejected=True)
            await client.emit(offer)
        else:
            children = node.children()
            client.log.debug("call stanza <%s>", children[0].tag if children else "")
    finally:
        await client.send_node(ack_for(node))
