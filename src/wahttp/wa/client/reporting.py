"""Reporting tokens: the `<reporting>` child Baileys 7 (and WhatsApp Web) attach to messages
that carry a message secret, so that a recipient can report a message verifiably.

From Baileys 7 `lib/Utils/reporting-utils.js` (`getMessageReportingToken`) and
`messages-send.js` (`relayMessage`):
- only for a message with `messageContextInfo.messageSecret` that is not a reaction, an
  encrypted reaction, an encrypted event response or a poll update
  (`shouldIncludeReportingToken`), and never on a retry resend or to a newsletter;
- content = the encoded Message (no padding) pruned to a fixed list of fields (below): at each
  level only listed fields are kept; a listed field with sub-fields (or `m`, "message") is
  pruned recursively and kept only if something is left; kept fields are sorted by number;
- key = HKDF-SHA256(ikm = message secret, salt none, info = message id + from + to +
  "Report Token", 32 bytes); for our own send from = to = the stanza's `to` (Baileys' key
  with fromMe: remoteJid, and participant only on resends);
- token = HMAC-SHA256(key, content)[:16] (we compute it over the unpadded protobuf; Baileys
  over the padded one, see `valid`), sent as
  `<reporting><reporting_token v="2">16 bytes</reporting_token></reporting>`.
"""

from __future__ import annotations

import hmac as _hmac
from dataclasses import dataclass, field

from wahttp.wa import crypto
from wahttp.wa.binary import Node
from wahttp.wa.client.messages import Message

INFO_SUFFIX = b"Report Token"
TOKEN_VERSION = "2"
TOKEN_LENGTH = 16
_NO_TOKEN_FIELDS = ("reactionMessage", "encReactionMessage", "encEventResponseMessage")
_NO_TOKEN_FIELDS_2 = ("pollUpdateMessage",)


@dataclass(frozen=True, slots=True)
class Spec:
    """Which sub-fields of a field are kept (None: the field whole)."""

    children: dict[int, Spec] | None = None
    message: bool = False  # `m`: a nested Message, pruned with an empty list (kept if non-empty)


def _s(*pairs: tuple[int, Spec]) -> Spec:
    return Spec(dict(pairs))


_LEAF = Spec()
_M = Spec(message=True)
_CTX = _s((21, _LEAF), (22, _LEAF))  # contextInfo: only fields 21 and 22
_LIST_49 = _s(
    (2, _LEAF), (3, _s((1, _LEAF), (2, _LEAF))), (5, _CTX), (8, _s((1, _LEAF), (2, _LEAF)))
)

# Baileys' `reportingFields`, field numbers of the Message protobuf.
FIELDS: dict[int, Spec] = {
    1: _LEAF,
    3: _s((2, _LEAF), (3, _LEAF), (8, _LEAF), (11, _LEAF), (17, _CTX), (25, _LEAF)),
    4: _s((1, _LEAF), (16, _LEAF), (17, _CTX)),
    5: _s((3, _LEAF), (4, _LEAF), (5, _LEAF), (16, _LEAF), (17, _CTX)),
    6: _s((1, _LEAF), (17, _CTX), (30, _LEAF)),
    7: _s((2, _LEAF), (7, _LEAF), (10, _LEAF), (17, _CTX), (20, _LEAF)),
    8: _s((2, _LEAF), (7, _LEAF), (9, _LEAF), (17, _CTX), (21, _LEAF)),
    9: _s((2, _LEAF), (6, _LEAF), (7, _LEAF), (13, _LEAF), (17, _CTX), (20, _LEAF)),
    12: _s((1, _LEAF), (2, _LEAF), (14, _M), (15, _LEAF)),
    18: _s((6, _LEAF), (16, _LEAF), (17, _CTX)),
    26: _s((4, _LEAF), (5, _LEAF), (8, _LEAF), (13, _LEAF), (17, _CTX)),
    28: _s((1, _LEAF), (2, _LEAF), (4, _LEAF), (5, _LEAF), (6, _LEAF), (7, _CTX)),
    37: _s((1, _M)),
    49: _LIST_49,
    53: _s((1, _M)),
    55: _s((1, _M)),
    58: _s((1, _M)),
    59: _s((1, _M)),
    60: _LIST_49,
    64: _LIST_49,
    66: _s((2, _LEAF), (6, _LEAF), (7, _LEAF), (13, _LEAF), (17, _CTX), (20, _LEAF)),
    74: _s((1, _M)),
    87: _s((1, _M)),
    88: _s((1, _LEAF), (2, _s((1, _LEAF))), (3, _CTX)),
    92: _s((1, _M)),
    93: _s((1, _M)),
    94: _s((1, _M)),
}


@dataclass
class _Reader:
    data: bytes
    pos: int = 0
    out: list[tuple[int, bytes]] = field(default_factory=list)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, bytes used); ValueError when truncated or longer than 5 bytes (as Baileys)."""
    value = shift = used = 0
    while pos + used < len(data):
        byte = data[pos + used]
        value |= (byte & 0x7F) << shift
        used += 1
        if not byte & 0x80:
            return value, used
        shift += 7
        if shift > 35:
            break
    raise ValueError("bad varint")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def prune(data: bytes, spec: dict[int, Spec]) -> bytes:
    """The fields of `data` (protobuf) that `spec` lists, pruned and sorted by number.
    ValueError for malformed input."""
    kept: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        tag, used = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        start = i
        i += used
        wanted = spec.get(number)
        if wire == 0:
            _, n = _varint(data, i)
            end = i + n
        elif wire == 1:
            end = i + 8
        elif wire == 5:
            end = i + 4
        elif wire == 2:
            length, n = _varint(data, i)
            value_start = i + n
            end = value_start + length
            if end > len(data):
                raise ValueError("truncated field")
            if wanted is not None and (wanted.message or wanted.children is not None):
                sub = prune(data[value_start:end], wanted.children or {})
                if sub:
                    kept.append((number, encode_varint(tag) + encode_varint(len(sub)) + sub))
                i = end
                continue
        else:
            raise ValueError("unsupported wire type")
        if end > len(data):
            raise ValueError("truncated field")
        if wanted is not None:
            kept.append((number, data[start:end]))
        i = end
    kept.sort(key=lambda item: item[0])  # stable: repeated fields keep their order
    return b"".join(b for _, b in kept)


def should_include(message: Message) -> bool:
    if not message.messageContextInfo.messageSecret:
        return False
    return not any(
        name in message.DESCRIPTOR.fields_by_name and message.HasField(name)
        for name in (*_NO_TOKEN_FIELDS, *_NO_TOKEN_FIELDS_2)
    )


def secret_key(message_secret: bytes, message_id: str, sender: str, receiver: str) -> bytes:
    info = message_id.encode() + sender.encode() + receiver.encode() + INFO_SUFFIX
    return crypto.hkdf(message_secret, 32, info=info)


def compute(
    encoded: bytes, message_secret: bytes, message_id: str, sender: str, receiver: str
) -> bytes | None:
    """The 16-byte token of an encoded Message, or None when nothing of it is reportable."""
    try:
        content = prune(encoded, FIELDS)
    except ValueError:
        return None
    if not content:
        return None
    key = secret_key(message_secret, message_id, sender, receiver)
    return crypto.hmac_sha256(key, content)[:TOKEN_LENGTH]


def for_send(message: Message, message_id: str, chat: str) -> Node | None:
    """The `<reporting>` child for our send of `message` to `chat`, if it gets one."""
    if not should_include(message):
        return None
    secret = message.messageContextInfo.messageSecret
    token = compute(message.SerializeToString(), secret, message_id, chat, chat)
    if token is None:
        return None
    return Node("reporting", {}, [Node("reporting_token", {"v": TOKEN_VERSION}, token)])


def token_of(stanza: Node) -> bytes | None:
    """The token a message stanza carries (`<reporting><reporting_token v="2">`)."""
    reporting = stanza.child("reporting")
    token = reporting.child("reporting_token") if reporting is not None else None
    if token is None or token.attr("v") != TOKEN_VERSION:
        return None
    data = token.content_bytes()
    return data if data and len(data) == TOKEN_LENGTH else None


def valid(token: bytes, encoded: bytes, message_id: str, chat: str) -> bool:
    """Check a token against the Message it came with (for the simulator).

    Baileys 7 computes its token over `encodeWAMessage(message)`, which appends WhatsApp's
    random padding (n bytes of value n, n = 1..16) to the protobuf. The pruning parses the
    padding as fields: for most n it is malformed and Baileys attaches no token at all; for
    n = 5 and 16 the padding is skipped (the token is the unpadded one); for n = 8 and 9 it
    reads as field 1 and becomes part of the content. So a token also counts as valid when
    it matches the message with some padding appended."""
    try:
        message = Message.FromString(encoded)
    except Exception:  # protobuf's DecodeError
        return False
    secret = message.messageContextInfo.messageSecret
    if not secret:
        return False
    for candidate in (encoded, *(encoded + bytes([n]) * n for n in range(1, 17))):
        expected = compute(candidate, secret, message_id, chat, chat)
        if expected is not None and _hmac.compare_digest(expected, token):
            return True
    return False
