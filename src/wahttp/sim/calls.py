"""Calls on the simulated network: a phone rings an account's companions, which may reject.

The server sends each of the callee's linked devices `<call from=<caller> id t><offer call-id
call-creator caller_pn>` with `<audio>` children (and `<video>` for a video call), as the real
server does (Baileys `handleCall`, whatsmeow `handleCallEvent`); an offline device gets it
from its queue, marked `offline`. A device answers with an `<ack class="call">`; to decline
it sends `<call id to=<caller>><reject call-id call-creator count="0"/></call>`, which the
server acks (`<ack class="call" type="reject">`; Baileys' `rejectCall` waits for that answer)
and records: the caller's phone stops ringing.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.jid import S_WHATSAPP_NET, Jid

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.server import SimServer

log = logging.getLogger(__name__)


@dataclass
class Call:
    id: str
    caller: str  # phone number
    callee: str  # phone number
    video: bool
    at: int
    status: str = "ringing"  # ringing, rejected
    rejected_by: str | None = None  # the device JID that declined

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "from": self.caller,
            "to": self.callee,
            "video": self.video,
            "at": self.at,
            "status": self.status,
            "rejectedBy": self.rejected_by,
        }


def offer_node(call: Call, to: Jid) -> Node:
    creator = str(Jid(call.caller, S_WHATSAPP_NET))
    media = [
        Node("audio", {"enc": "opus", "rate": "16000"}),
        Node("audio", {"enc": "opus", "rate": "8000"}),
    ]
    if call.video:
        media.append(Node("video", {"enc": "vp8", "dec": "vp8", "orientation": "0"}))
    children = [*media, Node("net", {"medium": "3"}), Node("encopt", {"keygen": "2"})]
    offer = Node(
        "offer",
        {"call-id": call.id, "call-creator": creator, "caller_pn": creator},
        children,
    )
    attrs = {
        "from": creator,
        "id": secrets.token_hex(8).upper(),
        "t": str(call.at),
        "to": str(to),
        "platform": "android",
        "version": "2.24.1.1",
    }
    return Node("call", attrs, [offer])


async def ring(server: SimServer, caller: str, callee: str, *, video: bool) -> Call:
    """`caller`'s phone calls `callee`: every linked device of `callee` gets the offer."""
    network = server.network
    target = network.accounts[callee]
    call = Call(secrets.token_hex(16).upper(), caller, callee, video, int(time.time()))
    network.calls[call.id] = call
    for device_id in sorted(target.devices):
        to = Jid(callee, S_WHATSAPP_NET, device_id)
        await server.router.deliver((callee, device_id), offer_node(call, to))
    log.info("call %s -> %s (%s)", caller, callee, "video" if video else "voice")
    return call


async def on_call(server: SimServer, conn: ServerConnection, node: Node) -> None:
    """A device's `<call>`: a reject ends the ringing; every one is acked."""
    children = node.children()
    info = children[0] if children else None
    kind = info.tag if info is not None else ""
    ack_attrs = {"class": "call", "id": node.attr("id") or "", "from": node.attr("to") or ""}
    if kind:
        ack_attrs["type"] = kind
    if info is not None and kind == "reject" and conn.device is not None:
        call = server.network.calls.get(info.attr("call-id") or "")
        if call is not None and call.callee == conn.device.number and call.status == "ringing":
            call.status = "rejected"
            call.rejected_by = str(conn.device.jid)
            log.info("call %s rejected by %s", call.id, call.rejected_by)
    await conn.send_node(Node("ack", ack_attrs))
