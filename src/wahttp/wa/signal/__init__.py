"""The Signal protocol as WhatsApp and libsignal-node speak it: pure, records in, records out.

Initiator: build_session(record, identity, bundle), then encrypt() (pkmsg until answered).
Responder: parse_prekey_message() to find the pre-keys, decrypt_prekey_message(), then
decrypt_message() for msgs. Records serialise to libsignal-node's JSON (Baileys' session files).
"""

from __future__ import annotations

from wahttp.wa.signal.builder import PreKeyBundle, build_session
from wahttp.wa.signal.cipher import (
    EncType,
    decrypt_message,
    decrypt_prekey_message,
    encrypt,
    has_open_session,
    remote_identity,
)
from wahttp.wa.signal.errors import (
    DuplicateMessage,
    InvalidKey,
    InvalidKeyId,
    InvalidMessage,
    InvalidRecord,
    NoSession,
    SignalError,
    UntrustedIdentity,
)
from wahttp.wa.signal.messages import PreKeyWhisper, parse_prekey_message
from wahttp.wa.signal.ratchet import MAX_FUTURE_MESSAGES, MAX_MESSAGE_KEYS, MAX_RECEIVING_CHAINS
from wahttp.wa.signal.record import (
    CLOSED_SESSIONS_MAX,
    BaseKeyType,
    Chain,
    ChainType,
    PendingPreKey,
    SessionEntry,
    SessionRecord,
)

__all__ = [
    "CLOSED_SESSIONS_MAX",
    "MAX_FUTURE_MESSAGES",
    "MAX_MESSAGE_KEYS",
    "MAX_RECEIVING_CHAINS",
    "BaseKeyType",
    "Chain",
    "ChainType",
    "DuplicateMessage",
    "EncType",
    "InvalidKey",
    "InvalidKeyId",
    "InvalidMessage",
    "InvalidRecord",
    "NoSession",
    "PendingPreKey",
    "PreKeyBundle",
    "PreKeyWhisper",
    "SessionEntry",
    "SessionRecord",
    "SignalError",
    "UntrustedIdentity",
    "build_session",
    "decrypt_message",
    "decrypt_prekey_message",
    "encrypt",
    "has_open_session",
    "parse_prekey_message",
    "remote_identity",
]
