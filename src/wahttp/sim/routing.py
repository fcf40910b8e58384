"""Stanza routing on the simulated server: messages fan out to addressed devices, receipts go
back to the sending device, and every device has an offline queue.

A stanza stays "pending" for a device until that device acks it; on every login pending stanzas
are delivered again first, then the queue, in the batches the client asks for, each marked
`offline`, then `<ib><offline count=N/>` (offline.py) — the at-least-once delivery real clients
rely on.

As on the real server, an <ack> names its stanza by class (the tag), id, `to` (the stanza's
`from`), `participant` and, except for messages, `type`: a delivery and a read receipt of one
message, or receipts of it from two devices, are distinct stanzas and each needs its own ack
(Baileys' `buildAckStanza` and our `ib.ack_for` echo exactly these attributes; neither we nor
whatsmeow echo a message's type, so it is not part of a message's key). A receipt for a message
acks that message too, as its delivery report does on the real server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wahttp.wa.binary import Node
from wahttp.wa.client import reporting
from wahttp.wa.jid import S_WHATSAPP_NET, Jid

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.network import Account, Network

log = logging.getLogger(__name__)
DeviceKey = tuple[str, int]  # (phone number, device id); device 0 is the phone itself
ORIGINS_KEPT = 100_000
# (tag, id, from, participant, type): what an <ack> must match to clear a pending stanza
PendingKey = tuple[str, str, str, str, str]


@dataclass
class Mailbox:
    """What the server holds for one device: sent but unacked, and not yet sent."""

    pending: OrderedDict[PendingKey, Node] = field(default_factory=OrderedDict)
    queue: list[Node] = field(default_factory=list)
    # message id -> the keys of pending messages with it, so a receipt finds them at once
    _messages: dict[str, set[PendingKey]] = field(default_factory=dict, init=False, repr=False)

    def hold(self, stanza: Node) -> None:
        """Keep a stanza sent to the device until its ack (a resend replaces its copy)."""
        pkey = pending_key(stanza)
        self.pending[pkey] = stanza
        if pkey[0] == "message":
            self._messages.setdefault(pkey[1], set()).add(pkey)

    def release(self, pkey: PendingKey) -> bool:
        """Forget the pending stanza of this key; False if there was none."""
        if self.pending.pop(pkey, None) is None:
            return False
        keys = self._messages.get(pkey[1]) if pkey[0] == "message" else None
        if keys is not None:
            keys.discard(pkey)
            if not keys:
                del self._messages[pkey[1]]
        return True

    def messages_with(self, message_id: str) -> list[PendingKey]:
        return sorted(self._messages.get(message_id, ()))


class Router:
    def __init__(self, network: Network) -> None:
        self.network = network
        self.mailboxes: dict[DeviceKey, Mailbox] = {}
        # message id -> the device that sent it, so receipts find their way back
        self.origins: OrderedDict[str, DeviceKey] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        # (from number, to number, enc type) -> count: lets tests see pkmsg turn into msg
        self.enc_counts: Counter[tuple[str, str, str]] = Counter()
        # number -> numbers it has exchanged messages with: who hears of its device changes
        self.contacts: dict[str, set[str]] = {}
        # message id -> (the stanza's `to`, its reporting token): checked by the receiving phone
        self.reporting_tokens: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        # valid / invalid / missing (a message secret but no token): see reporting.py
        self.reporting: Counter[str] = Counter()
        # "<class>[:<type>]" -> pending stanzas cleared by their device's <ack>
        self.acks: Counter[str] = Counter()

    # -- addressing ----------------------------------------------------------------------------
    def resolve(self, jid: Jid | None) -> tuple[Account, int] | None:
        """The account and device id a (PN or LID) device JID names, if it exists."""
        if jid is None:
            return None
        account = self.network.account_by_user(jid.user)
        if account is None:
            return None
        device = jid.device or 0
        if device != 0 and device not in account.devices:
            return None
        return account, device

    def device_jid(self, key: DeviceKey) -> Jid:
        return Jid(key[0], S_WHATSAPP_NET, key[1] or None)

    def mailbox(self, key: DeviceKey) -> Mailbox:
        box = self.mailboxes.get(key)
        if box is None:
            box = self.mailboxes[key] = Mailbox()
        return box

    def remember_origin(self, message_id: str, key: DeviceKey) -> None:
        self.origins[message_id] = key
        while len(self.origins) > ORIGINS_KEPT:
            self.origins.popitem(last=False)

    # -- delivery ------------------------------------------------------------------------------
    async def deliver(self, key: DeviceKey, stanza: Node) -> None:
        """Hand a stanza to a device: the phone at once, a companion now or when it connects."""
        if key[1] == 0:
            account = self.network.accounts.get(key[0])
            if account is not None:
                self._spawn(account.phone_peer.receive(self, stanza))
            return
        conn = self.network.connections.get(str(self.device_jid(key)))
        box = self.mailbox(key)
        if conn is None or conn.stalled or conn.closed.is_set():
            box.queue.append(stanza)
            return
        box.hold(stanza)
        await conn.send_node(stanza)

    def acked(self, key: DeviceKey, ack: Node) -> bool:
        """A device's <ack> clears the one pending stanza it names; True if there was one."""
        box = self.mailboxes.get(key)
        pkey = ack_key(ack)
        if box is None or not box.release(pkey):
            return False
        self.acks[f"{pkey[0]}:{pkey[4]}" if pkey[4] else pkey[0]] += 1
        return True

    def receipted(self, key: DeviceKey, receipt: Node, ids: list[str]) -> None:
        """A device's receipt clears the messages it reports on, from the sender it names."""
        box = self.mailboxes.get(key)
        if box is None:
            return
        senders = self._accounts_of(receipt.attr("to"), receipt.attr("participant"))
        for pkey in [k for message_id in dict.fromkeys(ids) for k in box.messages_with(message_id)]:
            stanza = box.pending[pkey]
            # Baileys addresses a receipt to the chat (non-AD, PN or LID), the message came from
            # a device of it (or, for our own account's copy, from us with the chat as recipient).
            if senders and not senders & self._accounts_of(
                stanza.attr("from"), stanza.attr("recipient")
            ):
                continue
            box.release(pkey)

    def _accounts_of(self, *jids: str | None) -> set[str]:
        numbers = set()
        for text in jids:
            try:
                account = self.network.account_by_user(Jid.parse(text or "").user)
            except ValueError:
                continue
            if account is not None:
                numbers.add(account.number)
        return numbers

    def take_backlog(self, key: DeviceKey) -> list[Node]:
        """What a device finds at login: unacked stanzas, then the queue, all held as pending
        (acked one by one as they are delivered; a drop halfway keeps every unacked one)."""
        box = self.mailbox(key)
        backlog = list(box.pending.values()) + box.queue
        box.queue = []
        for stanza in backlog:
            box.hold(stanza)
        return backlog

    async def flush(self, key: DeviceKey, conn: ServerConnection) -> int:
        """Send the whole backlog at once, unmarked (logins use offline.OfflineDelivery)."""
        backlog = self.take_backlog(key)
        for stanza in backlog:
            await conn.send_node(stanza)
        return len(backlog)

    def forget_device(self, key: DeviceKey) -> None:
        self.mailboxes.pop(key, None)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a phone-side task in the background (its failure is logged)."""
        self._spawn(coro)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("phone task failed", exc_info=task.exception())

    # -- messages from devices -----------------------------------------------------------------
    async def route_message(self, sender: DeviceKey, node: Node, push_name: str | None) -> Node:
        """Fan a client's <message> out; returns the server's ack for the sender."""
        message_id = node.attr("id") or ""
        chat = node.attr_jid("to")
        identity = node.child("device-identity")
        targets: list[tuple[Jid, Node]] = []
        participants = node.child("participants")
        if participants is not None:
            for to in participants.children("to"):
                enc = to.child("enc")
                if enc is not None:
                    targets.append((to.attr_jid("jid") or Jid("", ""), enc))
        else:
            for enc in node.children("enc"):  # a retry resend goes to one device
                targets.append((chat or Jid("", ""), enc))
        if chat is None or not targets:
            return _ack(node, error="400")
        refusal = await self._admit(sender, chat, node) if participants is not None else None
        if refusal is not None:
            return _ack(node, chat.to_non_ad(), str(int(time.time())), error=refusal)
        self.remember_origin(message_id, sender)
        token = reporting.token_of(node)
        if token is not None:
            self.reporting_tokens[message_id] = (node.attr("to") or "", token)
            while len(self.reporting_tokens) > ORIGINS_KEPT:
                self.reporting_tokens.popitem(last=False)
        elif node.child("reporting") is not None:
            self.reporting["invalid"] += 1  # not <reporting_token v="2"> of 16 bytes
        now = str(int(time.time()))
        if chat.user != sender[0]:
            target = self.network.account_by_user(chat.user)
            if target is not None:
                self.contacts.setdefault(sender[0], set()).add(target.number)
                self.contacts.setdefault(target.number, set()).add(sender[0])
        sender_account = self.network.accounts[sender[0]]
        chat_jid = node.attr_jid("recipient") or chat
        for target_jid, enc in targets:
            found = self.resolve(target_jid)
            if found is None:
                continue
            account, device_id = found
            self.enc_counts[(sender[0], account.number, enc.attr("type") or "")] += 1
            attrs = {
                "from": str(self.device_jid(sender)),
                "id": message_id,
                "t": now,
                "type": node.attr("type") or "text",
                "sender_lid": str(Jid(sender_account.phone.lid_user, "lid", sender[1] or None)),
            }
            if push_name:
                attrs["notify"] = push_name
            if account.number == sender[0]:
                attrs["recipient"] = str(chat_jid.to_non_ad())
                if node.attr("category") == "peer":  # between our own devices (key requests)
                    attrs["category"] = "peer"
            content = [enc] + ([identity] if identity is not None else [])
            await self.deliver((account.number, device_id), Node("message", attrs, content))
        return _ack(node, chat_jid.to_non_ad(), now)

    async def _admit(self, sender: DeviceKey, chat: Jid, node: Node) -> str | None:
        """Privacy tokens (privacy.py): the ack error a 1:1 message gets, or None."""
        target = self.network.account_by_user(chat.user) if chat.is_user() else None
        if target is None:
            return None
        if node.child("enc") is not None or chat.device is not None:
            # A retry resend to one device (Baileys: `<enc count>` beside `<participants>`,
            # `to` the device): never carries a token, and is not a new reach-out.
            return None
        if target.number == sender[0]:  # to our own devices: a token there is refused (479)
            return "479" if node.child("tctoken") is not None else None
        return await self.network.privacy.admit(self, sender[0], target, node)

    async def device_changed(self, number: str, device_id: int, kind: str) -> None:
        """Tell the account's own devices and its contacts that its device list changed."""
        account = self.network.accounts.get(number)
        if account is None:
            return
        device = Node("device", {"jid": str(Jid(number, S_WHATSAPP_NET, device_id))})
        listeners = [number, *sorted(self.contacts.get(number, set()))]
        for listener in listeners:
            for conn in list(self.network.connections.values()):
                if conn.device is None or conn.device.number != listener:
                    continue
                if listener == number and conn.device.device_id == device_id:
                    continue
                attrs = {
                    "from": str(Jid(number, S_WHATSAPP_NET)),
                    "type": "devices",
                    "id": conn.new_id(),
                    "t": str(int(time.time())),
                }
                await conn.send_node(Node("notification", attrs, [Node(kind, {}, [device])]))
        # The account's own companions also get their list (queued when offline).
        from wahttp.sim.account import devices_changed

        await devices_changed(self, number, device_id)

    async def route_receipt(self, receiver: DeviceKey, node: Node) -> None:
        """A device's receipt acks the stanza for it and travels back to the sender."""
        receipt_id = node.attr("id") or ""
        ids = [receipt_id]
        listing = node.child("list")
        if listing is not None:
            ids += [i.attr("id") or "" for i in listing.children("item")]
        self.receipted(receiver, node, ids)
        origin = self.origins.get(receipt_id)
        if origin is None or origin == receiver:
            return
        attrs = {
            "from": str(self.device_jid(receiver)),
            "id": receipt_id,
            "t": str(int(time.time())),
        }
        for key in ("type",):
            if node.attr(key):
                attrs[key] = node.attr(key) or ""
        if origin[0] == receiver[0] and node.attr("type") != "retry":
            # Our own other device read/received it: tell the sender which chat it was.
            attrs["recipient"] = node.attr("to") or ""
        await self.deliver(
            origin, Node("receipt", attrs, node.content if node.children() else None)
        )


def pending_key(node: Node) -> PendingKey:
    """The key of a stanza the server sent and waits to have acked."""
    kind = "" if node.tag == "message" else node.attr("type") or ""
    return (
        node.tag,
        node.attr("id") or "",
        node.attr("from") or "",
        node.attr("participant") or "",
        kind,
    )


def ack_key(ack: Node) -> PendingKey:
    """The key of the stanza an <ack> acknowledges (see the module doc)."""
    tag = ack.attr("class") or ""
    kind = "" if tag == "message" else ack.attr("type") or ""
    return (tag, ack.attr("id") or "", ack.attr("to") or "", ack.attr("participant") or "", kind)


def _ack(
    node: Node, chat: Jid | None = None, t: str | None = None, error: str | None = None
) -> Node:
    attrs = {"class": "message", "id": node.attr("id") or ""}
    if chat is not None:
        attrs["from"] = str(chat)
    if t is not None:
        attrs["t"] = t
    if error is not None:
        attrs["error"] = error
    return Node("ack", attrs)
