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
from wahttp.wa.client import e2e, messages, prekeys, usync
from wahttp.wa.errors import WAError
from wahttp.wa.jid import S_WHATSAPP_NET, Jid

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

ACK_TIMEOUT = 30.0


class SendError(WAError):
    """The server refused the message or never acknowledged it."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


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


async def ensure_sessions(client: Client, devices: list[Jid]) -> None:
    """Build sessions (X3DH) for devices we have none with, from one bundle fetch."""
    ss = client.signal
    addresses = {await ss.address(d): d for d in devices}
    have = await ss.has_sessions(list(addresses))
    missing = [d for a, d in addresses.items() if a not in have]
    if not missing:
        return
    bundles = await prekeys.fetch_bundles(client, missing)
    for device in missing:
        bundle = bundles.get(str(device))
        if bundle is not None:
            await e2e.start_session(ss, device, bundle)


async def _encrypt_all(
    client: Client, chat: Jid, devices: list[Jid], message: messages.Message
) -> tuple[list[Node], bool]:
    me = client.me
    plain = messages.pad(message.SerializeToString())
    own = messages.pad(messages.device_sent(str(chat), message).SerializeToString())
    nodes, any_pkmsg = [], False
    have = await client.signal.has_sessions([await client.signal.address(d) for d in devices])
    for device in devices:
        if await client.signal.address(device) not in have:
            continue  # no bundle could be had for it (e.g. a device that just left)
        payload = own if device.user == me.user else plain
        kind, ciphertext = await e2e.encrypt_for(client.signal, device, payload)
        any_pkmsg |= kind == "pkmsg"
        enc = Node("enc", {"v": "2", "type": kind}, ciphertext)
        nodes.append(Node("to", {"jid": str(device)}, [enc]))
    return nodes, any_pkmsg


async def send_message(
    client: Client, chat: Jid, message: messages.Message, message_id: str | None = None
) -> SendResult:
    me = client.me
    chat = chat.to_non_ad()
    message_id = message_id or messages.new_message_id()
    async with client.e2e_lock:
        users = await usync.fetch_devices(client, [chat, Jid(me.user, S_WHATSAPP_NET)])
        devices = [
            d for d in usync.device_jids(users) if not (d.user == me.user and d.device == me.device)
        ]
        await ensure_sessions(client, devices)
        participants, any_pkmsg = await _encrypt_all(client, chat, devices, message)
    if not participants:
        raise SendError(f"{chat} has no reachable device")
    content = [Node("participants", {}, participants)]
    if any_pkmsg:
        content.append(device_identity(client))
    stanza = Node("message", {"id": message_id, "to": str(chat), "type": "text"}, content)
    await client.remember_sent(message_id, chat, message)
    ack = await client.send_and_wait_ack(stanza, ACK_TIMEOUT)
    error = ack.attr("error")
    if error:
        raise SendError(
            f"the server refused the message (error {error})",
            int(error) if error.isdigit() else None,
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
