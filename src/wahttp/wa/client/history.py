"""History sync notifications from our phone: what wahttp takes from them.

The phone sends `protocolMessage.historySyncNotification` (type HISTORY_SYNC_NOTIFICATION) to
each new companion; a chunk is a zlib-deflated `HistorySync`, inline for the initial bootstrap
(`initialHistBootstrapInlinePayload`), otherwise an encrypted media blob (`md-msg-hist`), which
needs media download (not wired yet: those chunks are skipped). wahttp keeps no chat history;
it takes the privacy tokens its conversations carry (Baileys 7 `storeTcTokensFromHistorySync`),
so that an established chat's first send from a new device already carries the contact's token.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from wahttp.wa.client import tctoken
from wahttp.wa.client.messages import protocol_message
from wahttp.wa.proto.history_pb2 import HistorySync

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client
    from wahttp.wa.client.messages import Message

# An inline bootstrap is small; a payload inflating past this is refused, not decoded.
MAX_INFLATED = 32 * 1024 * 1024


class HistoryError(ValueError):
    """A history sync payload that does not inflate or decode."""


def notification_of(message: Message) -> Message.HistorySyncNotification | None:
    proto = protocol_message(message)
    if proto is not None and proto.HasField("historySyncNotification"):
        return proto.historySyncNotification
    return None


def decode_payload(payload: bytes, limit: int = MAX_INFLATED) -> HistorySync:
    """Inflate (zlib) and decode a history sync chunk, refusing one that inflates past `limit`."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, limit)
        if inflater.unconsumed_tail:
            raise HistoryError(f"history sync payload inflates past {limit} bytes")
        data += inflater.flush()
        return HistorySync.FromString(data)
    except (zlib.error, DecodeError) as exc:
        raise HistoryError(f"history sync payload not decodable ({type(exc).__name__})") from exc


async def on_notification(client: Client, note: Message.HistorySyncNotification) -> None:
    """A history sync notification from our own phone (the caller checks it is from us)."""
    if not note.initialHistBootstrapInlinePayload:
        client.log.debug("history sync chunk by blob: skipped (media download not wired)")
        return
    try:
        history = decode_payload(note.initialHistBootstrapInlinePayload)
    except HistoryError as exc:
        client.log.warning("history sync not taken: %s", exc)
        return
    stored = await tctoken.store_history_tokens(client, history)
    client.log.debug("history sync: %d privacy tokens stored", len(stored))
