"""Sending: fan a message out to every device of the recipient and our own other devices.

Device list (usync), missing sessions from fetched bundles (X3DH), one <enc> per device, the
device identity when any pkmsg is present, then wait for the server's ack.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import ack_errors, e2e, messages, prekeys, reporting, tctoken, usync
from wahttp.wa.client.events import MessageFailed
from wahttp.wa.errors import WAError
from wahttp.wa.jid import S_WHATSAPP_NET, Jid
from wahttp.wa.signal import SessionRecord

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

ACK_TIMEOUT = 30.0


class SendError(WAError):
    """The server refused the message or never acknowledged it."""

    def __init__(
        self,
        message: str,
        code: int | None = None,
        reason: str | None = None,
        message_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or message
        self.message_id = message_id


@dataclass(frozen=True, slots=True)
class SendResult:
    id: str
    timestamp: int
    devices: int


def device_identity(client: Client) -> Node:
    account = client.creds.account
    if account is None:
        raise SendError("not linked")
    return Node("device-identity", {}, account.SerializeToString())


async def ensure_sessions(
    client: Client, devices: list[Jid], addresses: dict[Jid, str] | None = None
) -> dict[str, SessionRecord]:
    """Build sessions (X3DH) for devices we have none with, from one bundle fetch; returns the
    session records of every device that has one now, by address. It queries the server: do
    not call it from the reader task, nor with the e2e lock held."""
    ss = client.signal
    if addresses is None:
        addresses = await e2e.addresses(ss, devices)
    records = await e2e.load_sessions(ss, addresses.values())
    missing = [d for d in devices if addresses[d] not in records]
    if not missing:
        return records
    bundles = await prekeys.fetch_bundles(client, missing)
    for device in missing:
        bundle = bundles.get(str(device))
        if bundle is not None:
            await e2e.start_session(ss, device, bundle)
    records.update(await e2e.load_sessions(ss, [addresses[d] for d in missing]))
    return records


async def _encrypt_all(
    client: Client,
    chat: Jid,
    devices: list[Jid],
    message: messages.Message,
    *,
    addresses: dict[Jid, str],
    records: dict[str, SessionRecord],
) -> tuple[list[Node], bool]:
    """One <to><enc/></to> per device we have a session with (in `records`, loaded under the
    e2e lock); every ratchet step is saved in one write before this returns."""
    me = client.me
    plain = messages.pad(message.SerializeToString())
    own = messages.pad(messages.device_sent(str(chat), message).SerializeToString())
    # Devices we could get no bundle for (e.g. one that just left) are skipped.
    reachable = [d for d in devices if addresses[d] in records]
    items = [(addresses[d], own if d.user == me.user else plain) for d in reachable]
    encrypted = await e2e.encrypt_many(client.signal, records, items)
    nodes, any_pkmsg = [], False
    for device, (kind, ciphertext) in zip(reachable, encrypted, strict=True):
        any_pkmsg |= kind == "pkmsg"
        enc = Node("enc", {"v": "2", "type": kind}, ciphertext)
        nodes.append(Node("to", {"jid": str(device)}, [enc]))
    return nodes, any_pkmsg


async def _encrypt_for_devices(
    client: Client, chat: Jid, devices: list[Jid], message: messages.Message
) -> tuple[list[Node], bool]:
    """Encrypt for every device, building missing sessions from fetched bundles.

    The e2e lock is never held while waiting for the server: the reader task takes it for
    every incoming message, so a holder waiting for an answer only the reader can deliver
    would stall both until the query timed out. Store calls when every session exists: one
    read of the sessions and one write."""
    ss = client.signal
    addresses = await e2e.addresses(ss, devices)
    async with client.e2e_lock:
        records = await e2e.load_sessions(ss, addresses.values())
        missing = [d for d in devices if addresses[d] not in records]
        if not missing:
            return await _encrypt_all(
                client, chat, devices, message, addresses=addresses, records=records
            )
    bundles = await prekeys.fetch_bundles(client, missing)
    async with client.e2e_lock:
        records = await e2e.load_sessions(ss, addresses.values())  # may have changed meanwhile
        for device in devices:
            bundle = bundles.get(str(device))
            if addresses[device] not in records and bundle is not None:
                await e2e.start_session(ss, device, bundle)
        records = await e2e.load_sessions(ss, addresses.values())
        return await _encrypt_all(
            client, chat, devices, message, addresses=addresses, records=records
        )


async def send_message(
    client: Client,
    chat: Jid,
    message: messages.Message,
    message_id: str | None = None,
    *,
    stored: bool = False,
) -> SendResult:
    """Encrypt for every device of `chat` and of our own account, send, and wait for the
    server's ack. The message is kept for retry receipts, durably (the client's SentStore)
    before it goes out unless `stored` says the caller has saved that copy already."""
    me = client.me
    chat = chat.to_non_ad()
    message_id = message_id or messages.new_message_id()
    users = await usync.fetch_devices(client, [chat, Jid(me.user, S_WHATSAPP_NET)])
    devices = [
        d for d in usync.device_jids(users) if not (d.user == me.user and d.device == me.device)
    ]
    participants, any_pkmsg = await _encrypt_for_devices(client, chat, devices, message)
    if not participants:
        raise SendError(f"{chat} has no reachable device")
    content = [Node("participants", {}, participants)]
    if any_pkmsg:
        content.append(device_identity(client))
    # A message with a message secret carries its reporting token (Baileys 7; not on resends).
    report = reporting.for_send(message, message_id, str(chat))
    if report is not None:
        content.append(report)
    # A privacy token goes with 1:1 messages to someone else (never to our own devices: 479).
    tokens = await tctoken.for_send(client, chat) if tctoken.is_one_to_one(client, chat) else None
    if tokens is not None and tokens.token is not None:
        content.append(tctoken.token_node(tokens.token))
    stanza = Node("message", {"id": message_id, "to": str(chat), "type": "text"}, content)
    await client.remember_sent(message_id, chat, message, durable=not stored)
    ack = await client.send_and_wait_ack(stanza, ACK_TIMEOUT)
    error = ack.attr("error")
    code = ack_errors.parse(error)
    if tokens is not None:
        # Issue ours to the contact (once per bucket; at once after a 463, to recover).
        recovering = code == ack_errors.ACCOUNT_RESTRICTION
        tctoken.after_send(client, chat, tokens, recovering=recovering)
    if error:
        reason = ack_errors.reason(code) if code is not None else f"error {error}"
        await client.emit(MessageFailed(message_id, str(chat), code, reason))
        raise SendError(
            f"the server refused the message (error {error}): {reason}", code, reason, message_id
        )
    return SendResult(message_id, ack.attr_int("t", int(time.time())), len(participants))


async def resend_to(client: Client, device: Jid, message_id: str, count: int) -> bool:
    """Answer a retry receipt: re-encrypt a recently sent message for one device."""
    sent = await client.recall_sent(message_id)
    if sent is None:
        client.log.info("retry for a message we no longer have")
        return False
    chat, message = sent
    me = client.me
    payload = messages.device_sent(str(chat), message) if device.user == me.user else message
    async with client.e2e_lock:
        kind, ciphertext = await e2e.encrypt_for(
            client.signal, device, messages.pad(payload.SerializeToString())
        )
    enc = Node("enc", {"v": "2", "type": kind, "count": str(count)}, ciphertext)
    attrs = {"id": message_id, "to": str(device), "type": "text"}
    if device.user == me.user:
        attrs["recipient"] = str(chat)
    content = [enc]
    if kind == "pkmsg":
        content.append(device_identity(client))
    await client.send_node(Node("message", attrs, content))
    return True


async def wait_acked(fut: asyncio.Future[Node], timeout: float) -> Node:
    try:
        return await asyncio.wait_for(fut, timeout)
    except TimeoutError as exc:
        raise SendError("the server did not acknowledge the message in time") from exc
