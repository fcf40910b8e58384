"""Receiving: decrypt 1:1 messages (pkmsg, msg), tell the owner, then send the receipt.

The owner's handlers run before the receipt leaves, so a message the server considers
delivered has already been handed over (the service writes it to its webhook outbox first).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import appstate, e2e, history, messages, retry
from wahttp.wa.client.events import MessageReceived
from wahttp.wa.errors import WAError
from wahttp.wa.jid import LID, Jid
from wahttp.wa.signal.errors import DuplicateMessage, SignalError

# How many received message ids a client remembers (to ack a redelivery).
RECENT_RECEIVED = 1000

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


def _addressing(node: Node, me: Jid, me_lid: Jid | None) -> tuple[Jid, Jid, bool] | None:
    """(chat, sender device, from_me) of a 1:1 message stanza, or None if it is not one."""
    sender = node.attr_jid("participant") or node.attr_jid("from")
    if sender is None or not (sender.is_pn() or sender.is_lid()):
        return None
    from_me = sender.user in (me.user, me_lid.user if me_lid else None)
    recipient = node.attr_jid("recipient")
    chat = recipient if (from_me and recipient is not None) else sender
    return chat.to_non_ad(), sender, from_me


async def on_message(client: Client, node: Node) -> None:
    me = client.me
    creds = client.creds
    me_lid = Jid.parse(creds.me.lid) if creds.me and creds.me.lid else None
    addressing = _addressing(node, me, me_lid)
    if addressing is None:
        # Groups, broadcasts, newsletters come with later features; ack so the server moves on.
        await client.send_node(_ack(node))
        return
    chat, sender, from_me = addressing
    alt = node.attr("sender_lid") or node.attr("participant_lid") or node.attr("sender_pn")
    address = None
    if alt and sender.is_pn():
        # Learn the sender's LID before decrypting, and move PN-addressed sessions over, so
        # one device's session never splits across two addresses (Baileys does the same).
        lid = Jid.parse(alt)
        if lid.is_lid():
            await client.learn_lid(sender.user, lid.user, [sender.device or 0])
            # The session address follows the mapping just checked: no second lookup.
            address = Jid(lid.user, LID, sender.device).signal_address()
    # Decrypt, hand over, and only then save the ratchet: if the hand-over fails or we crash,
    # nothing is saved, no receipt goes out, and the redelivered message still decrypts.
    async with client.e2e_lock:
        outcome = await _decrypt(client, node, sender, chat, from_me, address=address)
        if outcome is None:
            return
        decrypted, message = outcome
        if message is not None:
            event = _event(node, message, chat=chat, sender=sender, from_me=from_me, alt=alt)
            name = await appstate.contact_name(client, event.chat, alt if not from_me else None)
            if name is not None:
                event = dataclasses.replace(event, contact_name=name)
            await client.emit(event, must_succeed=True)
            share = _key_share(message) if from_me else None
            if share is not None:
                # Only our own devices (the phone) share app-state keys.
                await appstate.on_key_share(client, share)
            note = history.notification_of(message) if from_me else None
            if note is not None:
                # Only our own phone sends history syncs (Baileys drops a spoofed one too).
                await history.on_notification(client, note)
        await decrypted.commit()
        _remember(client, node.attr("id") or "")
    await client.send_node(_receipt(node, from_me) if message is not None else _ack(node))


def _remember(client: Client, message_id: str) -> None:
    client.recent_received[message_id] = None
    while len(client.recent_received) > RECENT_RECEIVED:
        client.recent_received.popitem(last=False)


async def _decrypt(
    client: Client, node: Node, sender: Jid, chat: Jid, from_me: bool, *, address: str | None
) -> tuple[e2e.Decrypted, messages.Message | None] | None:
    """The first decryptable <enc> of a stanza; None when the stanza was answered already."""
    for enc in node.children("enc"):
        data = enc.content_bytes()
        if data is None:
            continue
        try:
            decrypted = await e2e.decrypt_from(
                client.signal, sender, enc.attr("type") or "", data, address
            )
        except DuplicateMessage:
            if (node.attr("id") or "") in client.recent_received:
                client.log.info("duplicate message %s ignored", node.attr("id"))
                await client.send_node(_receipt(node, from_me))
                return None
            # Its ratchet key was used, but not for this message (a sender that encrypted
            # twice with one state, e.g. libsignal-node when both sides start a session at
            # once), or it came again after a restart: ask for it again rather than
            # acknowledge what was never handed over (the service drops a repeated id).
            client.log.warning("cannot decrypt %s: reused message key", node.attr("id"))
            await retry.request_resend(client, node, sender, chat)
            return None
        except (SignalError, WAError) as exc:
            client.log.warning(
                "cannot decrypt %s (%s): %s: %s",
                node.attr("id"),
                enc.attr("type"),
                type(exc).__name__,
                exc,
            )
            await retry.request_resend(client, node, sender, chat)
            return None
        try:
            return decrypted, messages.parse(decrypted.plaintext)
        except messages.PayloadError:
            client.log.warning("undecodable payload in %s", node.attr("id"))
            return decrypted, None
    await client.send_node(_ack(node))
    return None


def _event(
    node: Node,
    message: messages.Message,
    *,
    chat: Jid,
    sender: Jid,
    from_me: bool,
    alt: str | None,
) -> MessageReceived:
    if message.HasField("deviceSentMessage"):
        inner = message.deviceSentMessage
        if inner.destinationJid:
            chat = Jid.parse(inner.destinationJid).to_non_ad()
        message = inner.message
    content = messages.content_of(message)
    return MessageReceived(
        id=node.attr("id") or "",
        chat=str(chat),
        sender=str(sender),
        from_me=from_me,
        timestamp=node.attr_int("t", int(time.time())),
        push_name=node.attr("notify"),
        kind=content.kind,
        text=content.text,
        sender_alt=alt,
    )


def _key_share(message: messages.Message) -> messages.Message.AppStateSyncKeyShare | None:
    proto = messages.protocol_message(message)
    if proto is not None and proto.HasField("appStateSyncKeyShare"):
        return proto.appStateSyncKeyShare
    return None


def _receipt(node: Node, from_me: bool) -> Node:
    attrs = {"id": node.attr("id") or "", "to": node.attr("from") or ""}
    if node.attr("participant"):
        attrs["participant"] = node.attr("participant") or ""
    if node.attr("category") == "peer":
        attrs["type"] = "peer_msg"
    elif from_me:
        attrs["type"] = "sender"
    return Node("receipt", attrs)


def _ack(node: Node) -> Node:
    attrs = {"id": node.attr("id") or "", "class": "message", "to": node.attr("from") or ""}
    if node.attr("participant"):
        attrs["participant"] = node.attr("participant") or ""
    return Node("ack", attrs)
