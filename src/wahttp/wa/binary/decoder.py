"""WhatsApp binary XML -> Node, giving the same structure as Baileys' decodeBinaryNode.

Hostile input only ever raises DecodeError: every length is checked against the buffer,
nesting is bounded and inflation is capped.
"""

from __future__ import annotations

import zlib

from wahttp.wa.binary import tokens as t
from wahttp.wa.binary.node import Node
from wahttp.wa.errors import DecodeError
from wahttp.wa.jid import S_WHATSAPP_NET, SERVER_FOR_DOMAIN

MAX_DEPTH = 64  # nesting of nodes and of JID strings; real stanzas stay below ~10
MAX_INFLATED_SIZE = 4 << 20
# An INTEROP_JID whose server cannot be read is retried from the same position (as Baileys
# does); bounding the retries keeps crafted input from re-parsing the buffer again and again.
_MAX_INTEROP_RETRIES = 16

_SINGLE = t.SINGLE_BYTE_TOKENS
_N_SINGLE = len(_SINGLE)
_DOUBLE = t.DOUBLE_BYTE_TOKENS
_HEX_TO_NIBBLE = str.maketrans({"a": "-", "b": ".", "f": "\0"})
_LIST_TAGS = frozenset({t.LIST_EMPTY, t.LIST_8, t.LIST_16})


def decode_node(data: bytes | bytearray | memoryview) -> Node:
    """Decode a whole decrypted frame: flag byte (bit 1 = zlib-compressed), then the node."""
    if not data:
        raise DecodeError("empty frame")
    body = bytes(data[1:])
    if data[0] & 2:
        body = _inflate(body)
    return decode_node_body(body)


def decode_node_body(data: bytes | bytearray | memoryview) -> Node:
    """Decode an uncompressed node without flag byte; trailing bytes are ignored like Baileys."""
    reader = _Reader(bytes(data))
    try:
        return reader.node(0)
    except RecursionError:  # unreachable with MAX_DEPTH, kept as a last line of defence
        raise DecodeError("nesting too deep") from None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_INFLATED_SIZE + 1)
    except zlib.error as exc:
        raise DecodeError(f"bad compressed frame: {exc}") from None
    if len(out) > MAX_INFLATED_SIZE:
        raise DecodeError("compressed frame inflates beyond the size limit")
    if not inflater.eof:
        raise DecodeError("truncated compressed frame")
    return out


class _Reader:
    """A cursor over one node's bytes."""

    __slots__ = ("data", "end", "pos", "retries")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.end = len(data)
        self.pos = 0
        self.retries = 0

    # --- primitives -------------------------------------------------------------------

    def byte(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise DecodeError("end of stream")
        self.pos = pos + 1
        return self.data[pos]

    def take(self, n: int) -> bytes:
        pos = self.pos
        stop = pos + n
        if stop > self.end:  # check before slicing: a forged length allocates nothing
            raise DecodeError(f"end of stream: need {n} bytes at {pos}")
        self.pos = stop
        return self.data[pos:stop]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def int20(self) -> int:
        return int.from_bytes(self.take(3), "big") & 0xFFFFF

    # --- strings ----------------------------------------------------------------------

    def string(self, tag: int, depth: int) -> str:
        """The string for `tag` (already read); JID forms are returned formatted."""
        if 0 < tag < _N_SINGLE:
            return _SINGLE[tag]
        if tag == t.BINARY_8:
            return self.take(self.byte()).decode("utf-8", "replace")
        if tag == t.JID_PAIR:
            return self.jid_pair(depth + 1)
        if tag == t.AD_JID:
            return self.ad_jid(depth + 1)
        if tag in (t.NIBBLE_8, t.HEX_8):
            return self.packed(tag)
        if t.DICTIONARY_0 <= tag <= t.DICTIONARY_3:
            return _DOUBLE[tag - t.DICTIONARY_0][self.byte()]  # every table has 256 entries
        if tag == t.LIST_EMPTY:
            return ""
        if tag == t.BINARY_20:
            return self.take(self.int20()).decode("utf-8", "replace")
        if tag == t.BINARY_32:
            return self.take(self.uint(4)).decode("utf-8", "replace")
        if tag == t.FB_JID:
            return self.fb_jid(depth + 1)
        if tag == t.INTEROP_JID:
            return self.interop_jid(depth + 1)
        raise DecodeError(f"invalid string tag {tag}")

    def next_string(self, depth: int) -> str:
        """Read a tag byte and its string; single-byte tokens (most strings) stay inline."""
        pos = self.pos
        if pos >= self.end:
            raise DecodeError("end of stream")
        self.pos = pos + 1
        tag = self.data[pos]
        if 0 < tag < _N_SINGLE:
            return _SINGLE[tag]
        return self.string(tag, depth)

    def nested_string(self, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise DecodeError("JID nesting too deep")
        return self.next_string(depth)

    def packed(self, tag: int) -> str:
        start = self.byte()
        digits = self.take(start & 0x7F).hex()
        if tag == t.NIBBLE_8:
            if "c" in digits or "d" in digits or "e" in digits:  # nibbles 12-14 are unused
                raise DecodeError("invalid nibble")
            digits = digits.translate(_HEX_TO_NIBBLE)
        else:
            digits = digits.upper()
        # Bit 7 marks an odd length: the final (padding) character is dropped.
        return digits[:-1] if start & 0x80 else digits

    def jid_pair(self, depth: int) -> str:
        user = self.nested_string(depth)
        server = self.nested_string(depth)
        if not server:
            raise DecodeError("JID pair without server")
        return f"{user}@{server}"

    def ad_jid(self, depth: int) -> str:
        domain_type = self.byte()
        device = self.byte()
        user = self.nested_string(depth)
        server = SERVER_FOR_DOMAIN.get(domain_type, S_WHATSAPP_NET)
        # Formatted like Baileys' jidEncode: the agent is dropped and device 0 is not printed.
        return f"{user}:{device}@{server}" if device else f"{user}@{server}"

    def fb_jid(self, depth: int) -> str:
        user = self.nested_string(depth)
        device = self.uint(2)
        server = self.nested_string(depth)
        return f"{user}:{device}@{server}"

    def interop_jid(self, depth: int) -> str:
        user = self.nested_string(depth)
        device = self.uint(2)
        integrator = self.uint(2)
        before = self.pos
        try:
            server = self.nested_string(depth)
        except DecodeError:
            # Baileys treats an unreadable server as "interop" and rewinds.
            self.retries += 1
            if self.retries > _MAX_INTEROP_RETRIES:
                raise
            self.pos = before
            server = "interop"
        return f"{integrator}-{user}:{device}@{server}"

    # --- nodes ------------------------------------------------------------------------

    def list_size(self, tag: int) -> int:
        if tag == t.LIST_8:
            return self.byte()
        if tag == t.LIST_16:
            return self.uint(2)
        if tag == t.LIST_EMPTY:
            return 0
        raise DecodeError(f"invalid list tag {tag}")

    def node(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise DecodeError("node nesting too deep")
        pos = self.pos
        if pos + 2 > self.end:
            raise DecodeError("end of stream")
        data = self.data
        if data[pos] == t.LIST_8:  # the usual case, read inline
            size = data[pos + 1]
            self.pos = pos + 2
        else:
            size = self.list_size(self.byte())
        tag = self.next_string(depth)
        if not size or not tag:
            raise DecodeError("invalid node")
        attrs: dict[str, str] = {}
        next_string = self.next_string
        for _ in range((size - 1) >> 1):
            key = next_string(depth)
            attrs[key] = next_string(depth)
        if size & 1:
            return Node(tag, attrs)
        return Node(tag, attrs, self.content(depth))

    def content(self, depth: int) -> list[Node] | bytes | str:
        tag = self.byte()
        if tag in _LIST_TAGS:
            size = self.list_size(tag)
            node = self.node
            return [node(depth + 1) for _ in range(size)]
        if tag == t.BINARY_8:
            return self.take(self.byte())
        if tag == t.BINARY_20:
            return self.take(self.int20())
        if tag == t.BINARY_32:
            return self.take(self.uint(4))
        return self.string(tag, depth)
