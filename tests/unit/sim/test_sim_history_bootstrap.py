"""The simulated phone's initial history sync: Baileys 7 buffers its events for 20 s after a
first login until a history sync notification arrives, and only then runs its first full
app-state sync. The phone sends it (after the key share) as the real one does: an
INITIAL_BOOTSTRAP notification whose payload is inline, a zlib-deflated HistorySync."""

from __future__ import annotations

import zlib

from wahttp.sim.appstate import PhoneAppState
from wahttp.wa.client import messages
from wahttp.wa.proto.message_pb2 import HistorySync, Message


def test_initial_bootstrap_is_an_inline_history_sync_notification() -> None:
    sent = PhoneAppState.initial_bootstrap()
    # What the companion decrypts: the padded payload parses back to the same protocol message.
    message = messages.parse(messages.pad(sent.SerializeToString()))
    proto = message.protocolMessage
    assert proto.type == Message.ProtocolMessage.HISTORY_SYNC_NOTIFICATION
    note = proto.historySyncNotification
    assert note.HasField("syncType") and note.syncType == Message.INITIAL_BOOTSTRAP
    assert note.progress == 100
    # Inline, so no media download: Baileys inflates it and decodes a HistorySync.
    assert note.HasField("initialHistBootstrapInlinePayload")
    history = HistorySync.FromString(zlib.decompress(note.initialHistBootstrapInlinePayload))
    assert history.syncType == Message.INITIAL_BOOTSTRAP
    # Field numbers are WhatsApp's (WAProto): notification 6 in ProtocolMessage, syncType 6,
    # inline payload 11; HistorySync.syncType 1.
    wire = proto.SerializeToString()
    assert b"\x32" in wire[:4]  # field 6, length-delimited
    assert note.SerializeToString().startswith(b"\x30\x00")  # field 6 varint 0
    assert b"\x5a" in note.SerializeToString()  # field 11, length-delimited
    assert history.SerializeToString().startswith(b"\x08\x00")
