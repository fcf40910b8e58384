"""Node -> WhatsApp binary XML, byte-identical to Baileys' encodeBinaryNode (flag byte included).

Speed notes (bench/hotpaths.py): every string is written as `token bytes or _encode_string()`,
one dict lookup for the common case (tags and attribute names are nearly always tokens);
headers come from precomputed tables; nibble and hex packing use bytes.fromhex; the usual
JID shapes (`digits@server`, `digits:device@server`) skip the general JavaScript-compatible
parser. Nothing is cached between calls.
"""

from __future__ import annotations

from wahttp.wa.binary import tokens as t
from wahttp.wa.binary.node import Node
from wahttp.wa.jid import DOMAIN_FOR_SERVER, split_wire_jid

_TOKEN_BYTES = t.TOKEN_BYTES
_MAX_LIST = 0xFFFF
_MAX_BINARY = 0xFFFFFFFF
_EMPTY_STRING = bytes((t.BINARY_8, 0))
_LIST_EMPTY = bytes((t.LIST_EMPTY,))
_JID_PAIR = bytes((t.JID_PAIR,))
_NIBBLE_CHARS = "0123456789-."
_HEX_CHARS = "0123456789ABCDEF"
# Device numbers as written in JIDs ("0" to "999") -> the byte Baileys writes (Number() & 0xff).
_DEVICE_BYTES = {str(n): n & 0xFF for n in range(1000)}


def _packed_size(count: int) -> int:
    """The byte count of a packed string; bit 7 flags an odd character count."""
    return ((count + 1) >> 1) | (0x80 if count & 1 else 0)


# Two-byte headers `<tag> <size>`, indexed by size (list of 0 items: LIST_EMPTY alone).
_LIST_8_HEADERS = (_LIST_EMPTY, *(bytes((t.LIST_8, n)) for n in range(1, 256)))
_BINARY_8_HEADERS = tuple(bytes((t.BINARY_8, n)) for n in range(256))
_NIBBLE_HEADERS = tuple(bytes((t.NIBBLE_8, _packed_size(n))) for n in range(t.PACKED_MAX + 1))
_HEX_HEADERS = tuple(bytes((t.HEX_8, _packed_size(n))) for n in range(t.PACKED_MAX + 1))


def encode_node(node: Node) -> bytes:
    """Encode a frame body: flag byte 0 (uncompressed) followed by the node."""
    out = [b"\x00"]
    _write_node(out, node)
    return b"".join(out)


def encode_node_body(node: Node) -> bytes:
    """Encode just the node, without the leading flag byte."""
    out: list[bytes] = []
    _write_node(out, node)
    return b"".join(out)


def _write_node(out: list[bytes], node: Node) -> None:
    """Append the encoding of `node` to `out`, piece by piece (joined once at the end)."""
    tag = node.tag
    if not tag:
        # Baileys throws at the top level and silently drops tagless children; a tagless
        # node is always a caller bug, so refuse it everywhere.
        raise ValueError("node tag must be a non-empty string")
    attrs = node.attrs
    content = node.content
    token = _TOKEN_BYTES.get  # local: called for every string below
    size = 2 * len(attrs) + (1 if content is None else 2)
    out.append(_LIST_8_HEADERS[size] if size < 256 else _list_16_header(size))
    out.append(token(tag) or _encode_string(tag))
    for key, value in attrs.items():
        out.append(token(key) or _encode_string(key))
        out.append(token(value) or _encode_string(value))
    if content is None:
        return
    if isinstance(content, list):
        count = len(content)
        out.append(_LIST_8_HEADERS[count] if count < 256 else _list_16_header(count))
        for child in content:
            _write_node(out, child)
    elif isinstance(content, (bytes, bytearray)):
        length = len(content)
        out.append(_BINARY_8_HEADERS[length] if length < 256 else _binary_header(length))
        out.append(content if type(content) is bytes else bytes(content))
    elif isinstance(content, str):
        out.append(token(content) or _encode_string(content))
    elif isinstance(content, memoryview):
        data = content.tobytes()
        out.append(_binary_header(len(data)))
        out.append(data)
    else:
        raise TypeError(f"invalid content for <{tag}>: {type(content).__name__}")


def _list_16_header(size: int) -> bytes:
    if size > _MAX_LIST:  # Baileys would silently truncate the size and corrupt the stream
        raise ValueError(f"list too long to encode: {size}")
    return bytes((t.LIST_16, size >> 8, size & 0xFF))


def _binary_header(length: int) -> bytes:
    """BINARY_8/20/32 and the length, for any length (the caller fast-paths < 256)."""
    if length < 256:
        return _BINARY_8_HEADERS[length]
    if length < 1 << 20:
        return bytes((t.BINARY_20,)) + length.to_bytes(3, "big")
    if length <= _MAX_BINARY:
        return bytes((t.BINARY_32,)) + length.to_bytes(4, "big")
    raise ValueError(f"binary too large to encode: {length}")


def _encode_string(text: str) -> bytes:
    """A string that is not a token, in Baileys' order: empty, nibble, hex, JID, raw UTF-8.

    Callers look tokens up themselves (`token(text) or _encode_string(text)`). JIDs are tested
    early: a string with '@' is never nibble or hex, so the order makes no difference.
    """
    if not text:
        return _EMPTY_STRING
    if "@" in text:
        return _encode_jid(text)
    length = len(text)
    if length <= t.PACKED_MAX:
        # `not text.strip(chars)` is a C-speed "every character is in chars" test.
        if not text.strip(_NIBBLE_CHARS):
            # bytes.fromhex does the packing: '-' is nibble 10 ('a'), '.' is 11 ('b');
            # replace() returns the string itself when there is nothing to replace.
            digits = text.replace("-", "a").replace(".", "b")
            return _NIBBLE_HEADERS[length] + bytes.fromhex(digits + "f" if length & 1 else digits)
        if not text.strip(_HEX_CHARS):
            return _HEX_HEADERS[length] + bytes.fromhex(text + "f" if length & 1 else text)
    raw = text.encode("utf-8")
    return _binary_header(len(raw)) + raw


def _encode_jid(text: str) -> bytes:
    """AD_JID when there is a device part, else JID_PAIR (user, then server as a string)."""
    token = _TOKEN_BYTES.get
    prefix = b""
    while True:  # loops only for a JID_PAIR whose server is itself a JID ("a@b@c")
        user, server, domain_type, device = _split_jid(text)
        if device is not None:  # no '@' in a user part: a token, packed or raw
            return (
                prefix
                + bytes((t.AD_JID, domain_type, device))
                + (token(user) or _encode_string(user))
            )
        prefix += _JID_PAIR + ((token(user) or _encode_string(user)) if user else _LIST_EMPTY)
        server_bytes = token(server)
        if server_bytes is not None:
            return prefix + server_bytes
        if "@" not in server:
            return prefix + _encode_string(server)
        text = server


def _split_jid(text: str) -> tuple[str, str, int, int | None]:
    """(user, server, domain type, device or None), as wahttp.wa.jid.split_wire_jid.

    Fast path for `user@server` and `user:device@server` (plain decimal device, no agent);
    anything else goes through split_wire_jid's JavaScript number conversions.
    """
    user_part, _, server = text.partition("@")
    if "_" not in user_part:
        user, colon, device_text = user_part.partition(":")
        if not colon:
            return user, server, 0, None  # JID_PAIR: the domain type is not written
        device = _DEVICE_BYTES.get(device_text)
        if device is not None:
            return user, server, DOMAIN_FOR_SERVER.get(server, 0), device
    jid = split_wire_jid(text)
    assert jid is not None  # the caller checked for '@'
    return jid.user, jid.server, jid.domain_type, jid.device
