"""Asking our own phone for app-state sync keys we lack (APP_STATE_SYNC_KEY_REQUEST).

A patch (or snapshot) encrypted with a key id we hold no `app-state-sync-key-<id>` for cannot
be applied, and its collection waits where it is (appstate.py). Companions then ask the primary
device for the key, as whatsmeow does (`requestMissingAppStateKeys` in appstate.go, at most once
per key id per 24 hours; `preparePeerMessageNode` in send.go): a peer protocol message
`ProtocolMessage{type: APP_STATE_SYNC_KEY_REQUEST, appStateSyncKeyRequest.keyIds}` to our own
account's device 0, `<message to=<our number>@s.whatsapp.net type="text" category="peer"
push_priority="high"><enc/>[<device-identity/>]</message>` (one `<enc>`, no `<participants>`:
Baileys 7's `relayMessage` sends its peer messages the same way). The phone answers with an
APP_STATE_SYNC_KEY_SHARE; `appstate.on_key_share` stores it and syncs every collection again.
Baileys 7 itself never asks: it parks the collection until a share comes (`Socket/chats.js`
`blockedCollections`; the TODO in `Socket/messages-send.js` `sendPeerDataOperationMessage`).

Asking runs in a background job of the client (never in the reader, which must be free to pass
on the server's ack the send waits for) and never holds the app-state lock.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Container, Iterable
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import e2e, messages, send
from wahttp.wa.errors import WAError
from wahttp.wa.jid import S_WHATSAPP_NET, Jid
from wahttp.wa.proto import appstate_pb2 as pb

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

# How long a key id that was asked for is not asked for again (whatsmeow: 24 h). The phone
# gets the request even when it is offline (the server queues it), so asking again sooner only
# helps when the phone lost it; a reconnect of a new Client starts afresh.
REQUEST_INTERVAL = 24 * 3600.0


class KeyRequests:
    """The key ids this client asked the phone for, and when (monotonic seconds)."""

    def __init__(self, interval: float = REQUEST_INTERVAL) -> None:
        self.interval = interval
        self._asked: dict[bytes, float] = {}
        self.sent = 0  # requests that reached the server (for tests and logs)

    def due(self, key_ids: Iterable[bytes], now: float) -> list[bytes]:
        """The ids not asked for within the interval, marked as asked now."""
        out = []
        for key_id in dict.fromkeys(key_ids):
            last = self._asked.get(key_id)
            if key_id and (last is None or now - last >= self.interval):
                self._asked[key_id] = now
                out.append(key_id)
        return out

    def forget(self, key_ids: Iterable[bytes]) -> None:
        """The request for these did not go out: a later sync may ask again."""
        for key_id in key_ids:
            self._asked.pop(key_id, None)


def key_request(key_ids: Iterable[bytes]) -> messages.Message:
    message = messages.Message()
    proto = message.protocolMessage
    proto.type = messages.Message.ProtocolMessage.APP_STATE_SYNC_KEY_REQUEST
    for key_id in key_ids:
        proto.appStateSyncKeyRequest.keyIds.add().keyId = key_id
    return message


def missing(
    patches: Iterable[pb.SyncdPatch],
    keys: Container[bytes],
    snapshot: pb.SyncdSnapshot | None = None,
) -> list[bytes]:
    """The key ids these patches (and their mutations) and the snapshot (and its records) use
    that are not in `keys`."""
    ids: dict[bytes, None] = {}
    if snapshot is not None:
        ids[snapshot.keyId.id] = None
        ids.update((r.keyId.id, None) for r in snapshot.records)
    for patch in patches:
        ids[patch.keyId.id] = None
        ids.update((m.record.keyId.id, None) for m in patch.mutations)
    return [i for i in ids if i and i not in keys]


def request_missing(client: Client, key_ids: Iterable[bytes]) -> list[bytes]:
    """Ask the phone for these keys in the background, unless asked lately; returns the ids
    a request is going out for. Does not wait for anything."""
    due = client.appstate_key_requests.due(key_ids, time.monotonic())
    if due:
        client.spawn(_request(client, due), "wa-appstate-keys")
    return due


async def _request(client: Client, key_ids: list[bytes]) -> None:
    try:
        await send_key_request(client, key_ids)
    except (WAError, TimeoutError, OSError) as exc:  # OSError: the store is unreachable
        client.appstate_key_requests.forget(key_ids)
        client.log.warning("app-state key request not sent: %s: %s", type(exc).__name__, exc)
        return
    client.appstate_key_requests.sent += 1
    client.log.info(
        "asked the phone for app-state key(s) %s",
        ", ".join(base64.b64encode(k).decode() for k in key_ids),
    )


async def send_key_request(client: Client, key_ids: list[bytes]) -> str:
    """Send the request to our phone and wait for the server's ack; returns its message id.

    The ratchet step is saved before the stanza leaves (encrypt_for); the e2e lock is held only
    around the encryption, never while waiting for the server."""
    phone = Jid(client.me.user, S_WHATSAPP_NET)  # device 0: the primary device
    await send.ensure_sessions(client, [phone])
    plaintext = messages.pad(key_request(key_ids).SerializeToString())
    async with client.e2e_lock:
        kind, ciphertext = await e2e.encrypt_for(client.signal, phone, plaintext)
    content = [Node("enc", {"v": "2", "type": kind}, ciphertext)]
    if kind == "pkmsg":
        content.append(send.device_identity(client))
    message_id = messages.new_message_id()
    attrs = {
        "id": message_id,
        "to": str(phone),
        "type": "text",
        "category": "peer",
        "push_priority": "high",
    }
    ack = await client.send_and_wait_ack(Node("message", attrs, content), send.ACK_TIMEOUT)
    if ack.attr("error"):
        raise send.SendError(
            f"the server refused the key request (error {ack.attr('error')})",
            message_id=message_id,
        )
    return message_id
