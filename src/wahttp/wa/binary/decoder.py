"""WhatsApp binary XML -> Node, giving the same structure as Baileys' decodeBinaryNode.

Hostile input only ever raises DecodeError: every length is checked against the buffer,
nesting is bounded and inflation is capped.

Speed notes (bench/hotpaths.py): the read position is threaded through as a local `pos`
(methods take it and return `(value, new_pos)`) instead of living on the decoder; the bytes
that are a whole string by themselves (single-byte tokens, "" for LIST_EMPTY) are looked up
in one table, inline, before any call; and single bytes are read as `data[pos]` without a
bounds check: reading past the end raises IndexError, which _decode() turns into
DecodeError. Lengths are still checked before slicing, so a forged length allocates nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TypeAlias

from wahttp.wa.binary import tokens as t
from wahttp.wa.binary.node import Node
from wahttp.wa.errors import DecodeError
from wahttp.wa.jid import S_WHATSAPP_NET, SERVER_FOR_DOMAIN

MAX_DEPTH = 64  # nesting of nodes and of JID strings; real stanzas stay below ~10
MAX_INFLATED_SIZE = 4 << 20
# An INTEROP_JID whose server cannot be read is retried from the same position (as Baileys
# does); bounding the retries keeps crafted input from re-parsing the buffer again and again.
_MAX_INTEROP_RETRIES = 16

# Tag byte -> the string it stands for when that byte alone is the whole string (the
# single-byte tokens, and "" for LIST_EMPTY); None for tags followed by more bytes.
_STRINGS: tuple[str | None, ...] = (
    "",
    *t.SINGLE_BYTE_TOKENS[1:],
    *(None for _ in range(len(t.SINGLE_BYTE_TOKENS), 256)),
)
_DOUBLE = t.DOUBLE_BYTE_TOKENS
_LIST_EMPTY = t.LIST_EMPTY
_LIST_8 = t.LIST_8
_LIST_16 = t.LIST_16
_BINARY_8 = t.BINARY_8
_BINARY_20 = t.BINARY_20
_BINARY_32 = t.BINARY_32
_LIST_TAGS = frozenset({t.LIST_EMPTY, t.LIST_8, t.LIST_16})
_BINARY_TAGS = frozenset({t.BINARY_8, t.BINARY_20, t.BINARY_32})


def decode_node(data: bytes | bytearray | memoryview) -> Node:
    """Decode a whole decrypted frame: flag byte (bit 1 = zlib-compressed), then the node."""
    if not data:
        raise DecodeError("empty frame")
    if data[0] & 2:
        return _decode(_inflate(bytes(data[1:])), 0)
    return _decode(data if type(data) is bytes else bytes(data), 1)  # skip the flag byte


def decode_node_body(data: bytes | bytearray | memoryview) -> Node:
    """Decode an uncompressed node without flag byte; trailing bytes are ignored like Baileys."""
    return _decode(data if type(data) is bytes else bytes(data), 0)


def _decode(data: bytes, start: int) -> Node:
    try:
        return _Decoder(data).node(start, 0)[0]
    except IndexError:  # a single-byte read past the end (see the module docstring)
        raise DecodeError("end of stream") from None
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


def _unpack_nibbles(hex_digits: str) -> str:
    """Nibble characters from hex digits: 0-9, a = '-', b = '.', f = '\\0'; c-e are invalid."""
    if "c" in hex_digits or "d" in hex_digits or "e" in hex_digits:
        raise DecodeError("invalid nibble")
    return hex_digits.replace("a", "-").replace("b", ".").replace("f", "\0")


class _Decoder:
    """One node's bytes and the decoding rules.

    Methods take the read position and return (value, next position). A string starts with a
    tag byte `code`: `_STRINGS[code]` resolves the common one-byte strings inline, any other
    code is read by its reader, `_READERS[code](self, code, pos_after_code, depth)`.
    """

    __slots__ = ("data", "retries", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.retries = 0

    # --- nodes ------------------------------------------------------------------------

    def node(self, pos: int, depth: int) -> tuple[Node, int]:
        if depth > MAX_DEPTH:
            raise DecodeError("node nesting too deep")
        data = self.data
        strings = _STRINGS
        # The usual header, LIST_8 <size> <one-byte tag>, is read inline. (Every valid
        # node has these 3 bytes, so reading the third one early loses nothing.)
        tag = strings[data[pos + 2]]
        if data[pos] == _LIST_8 and tag is not None:
            size = data[pos + 1]
            pos += 3
        else:
            size, tag, pos = self.header(pos, depth)
        if not size or not tag:
            raise DecodeError("invalid node")
        attrs: dict[str, str] = {}
        if size > 2:
            for _ in range((size - 1) >> 1):
                # Keys are nearly always one-byte tokens, values often are.
                key = strings[data[pos]]
                code = data[pos + 1]
                value = strings[code]
                if key is None:
                    key, pos = self.string(pos, depth)
                    value, pos = self.string(pos, depth)
                elif value is None:
                    value, pos = _READERS[code](self, code, pos + 2, depth)
                else:
                    pos += 2
                attrs[key] = value
        if size & 1:
            return Node(tag, attrs), pos
        # Content; child lists and short binaries, by far the most common, are read inline.
        code = data[pos]
        if code == _LIST_8:
            children: list[Node] = []
            append = children.append
            node = self.node
            child_depth = depth + 1
            count = data[pos + 1]
            pos += 2
            for _ in range(count):
                child, pos = node(pos, child_depth)
                append(child)
            return Node(tag, attrs, children), pos
        if code == _BINARY_8:
            end = pos + 2 + data[pos + 1]
            if end > self.size:
                raise DecodeError("end of stream")
            return Node(tag, attrs, data[pos + 2 : end]), end
        content, pos = self.content(code, pos + 1, depth)
        return Node(tag, attrs, content), pos

    def header(self, pos: int, depth: int) -> tuple[int, str, int]:
        """A node's list size and tag, in any form."""
        size, pos = self.list_size(self.data[pos], pos + 1)
        tag, pos = self.string(pos, depth)
        return size, tag, pos

    def list_size(self, code: int, pos: int) -> tuple[int, int]:
        """The size of a list whose tag byte `code` was read; its size bytes start at `pos`."""
        if code == _LIST_8:
            return self.data[pos], pos + 1
        if code == _LIST_16:
            return self.uint16(pos)
        if code == _LIST_EMPTY:
            return 0, pos
        raise DecodeError(f"invalid list tag {code}")

    def content(self, code: int, pos: int, depth: int) -> tuple[list[Node] | bytes | str, int]:
        """Content after its tag byte `code`, in any form."""
        if code in _LIST_TAGS:
            count, pos = self.list_size(code, pos)
            children: list[Node] = []
            for _ in range(count):
                child, pos = self.node(pos, depth + 1)
                children.append(child)
            return children, pos
        if code in _BINARY_TAGS:
            length, pos = self.length(code, pos)
            return self.take(pos, length)
        text = _STRINGS[code]
        return (text, pos) if text is not None else _READERS[code](self, code, pos, depth)

    # --- string readers (see _READERS) ------------------------------------------------

    def token(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        """A one-byte string (normally resolved inline through _STRINGS)."""
        text = _STRINGS[code]
        assert text is not None
        return text, pos

    def double_token(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        # Every table has 256 entries: any index byte is valid.
        return _DOUBLE[code - t.DICTIONARY_0][self.data[pos]], pos + 1

    def utf8(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        """BINARY_8/20/32 as a string; invalid UTF-8 becomes U+FFFD, as in Node.js."""
        length, pos = self.length(code, pos)
        raw, pos = self.take(pos, length)
        return raw.decode("utf-8", "replace"), pos

    def nibbles(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        """NIBBLE_8: digits, '-' and '.' packed two per byte; bit 7 of the count marks an odd
        number of characters (the last nibble is padding, normally 15)."""
        data = self.data
        start = data[pos]
        end = pos + 1 + (start & 0x7F)
        if end > self.size:
            raise DecodeError("end of stream")
        hex_digits = data[pos + 1 : end].hex()
        if start & 0x80:
            text = hex_digits[:-1]
            if text.isdigit() and hex_digits[-1] == "f":  # fast path: odd digits only
                return text, end
            return _unpack_nibbles(hex_digits)[:-1], end
        if hex_digits.isdigit():  # fast path: digits only (phone numbers, timestamps)
            return hex_digits, end
        return _unpack_nibbles(hex_digits), end

    def hex(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        """HEX_8: upper-case hex digits packed two per byte; bit 7 as for nibbles."""
        data = self.data
        start = data[pos]
        end = pos + 1 + (start & 0x7F)
        if end > self.size:
            raise DecodeError("end of stream")
        text = data[pos + 1 : end].hex().upper()
        return (text[:-1] if start & 0x80 else text), end

    def jid_pair(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        depth += 1
        if depth > MAX_DEPTH:
            raise DecodeError("JID nesting too deep")
        data = self.data
        code = data[pos]
        user = _STRINGS[code]  # jid_part(), inline: JIDs are common
        if user is None:
            user, pos = _READERS[code](self, code, pos + 1, depth)
        else:
            pos += 1
        code = data[pos]
        server = _STRINGS[code]
        if server is None:
            server, pos = _READERS[code](self, code, pos + 1, depth)
        else:
            pos += 1
        if not server:
            raise DecodeError("JID pair without server")
        return f"{user}@{server}", pos

    def ad_jid(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        depth += 1
        if depth > MAX_DEPTH:
            raise DecodeError("JID nesting too deep")
        data = self.data
        domain_type = data[pos]
        device = data[pos + 1]
        code = data[pos + 2]
        user = _STRINGS[code]  # jid_part(), inline: JIDs are common
        if user is None:
            user, pos = _READERS[code](self, code, pos + 3, depth)
        else:
            pos += 3
        server = SERVER_FOR_DOMAIN.get(domain_type, S_WHATSAPP_NET)
        # Formatted like Baileys' jidEncode: the agent is dropped and device 0 is not printed.
        return (f"{user}:{device}@{server}" if device else f"{user}@{server}"), pos

    def fb_jid(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        user, pos = self.jid_part(pos, depth + 1)
        device, pos = self.uint16(pos)
        server, pos = self.jid_part(pos, depth + 1)
        return f"{user}:{device}@{server}", pos

    def interop_jid(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        user, pos = self.jid_part(pos, depth + 1)
        device, pos = self.uint16(pos)
        integrator, pos = self.uint16(pos)
        try:
            server, pos = self.jid_part(pos, depth + 1)
        except (DecodeError, IndexError):
            # Baileys treats an unreadable server as "interop" and rewinds (pos is unchanged).
            self.retries += 1
            if self.retries > _MAX_INTEROP_RETRIES:
                raise
            server = "interop"
        return f"{integrator}-{user}:{device}@{server}", pos

    def invalid(self, code: int, pos: int, depth: int) -> tuple[str, int]:
        raise DecodeError(f"invalid string tag {code}")

    def jid_part(self, pos: int, depth: int) -> tuple[str, int]:
        """A string inside a JID nested `depth` levels deep."""
        if depth > MAX_DEPTH:
            raise DecodeError("JID nesting too deep")
        return self.string(pos, depth)

    def string(self, pos: int, depth: int) -> tuple[str, int]:
        """A whole string: its tag byte, then what the tag calls for."""
        code = self.data[pos]
        text = _STRINGS[code]
        return (text, pos + 1) if text is not None else _READERS[code](self, code, pos + 1, depth)

    # --- lengths and byte runs --------------------------------------------------------

    def uint16(self, pos: int) -> tuple[int, int]:
        data = self.data
        return data[pos] << 8 | data[pos + 1], pos + 2

    def length(self, code: int, pos: int) -> tuple[int, int]:
        """The length after BINARY_8 (1 byte), BINARY_20 (20 bits in 3 bytes) or BINARY_32."""
        if code == _BINARY_8:
            return self.data[pos], pos + 1
        raw, pos = self.take(pos, 3 if code == _BINARY_20 else 4)
        length = int.from_bytes(raw, "big")
        return (length & 0xFFFFF if code == _BINARY_20 else length), pos

    def take(self, pos: int, n: int) -> tuple[bytes, int]:
        """`n` bytes from `pos`; the length is checked first so a forged one allocates nothing."""
        end = pos + n
        if end > self.size:
            raise DecodeError(f"end of stream: need {n} bytes at {pos}")
        return self.data[pos:end], end


_Reader: TypeAlias = Callable[[_Decoder, int, int, int], tuple[str, int]]


def _string_readers() -> tuple[_Reader, ...]:
    readers: list[_Reader] = [_Decoder.invalid] * 256
    for code, text in enumerate(_STRINGS):
        if text is not None:
            readers[code] = _Decoder.token
    for code in range(t.DICTIONARY_0, t.DICTIONARY_3 + 1):
        readers[code] = _Decoder.double_token
    readers[t.BINARY_8] = readers[t.BINARY_20] = readers[t.BINARY_32] = _Decoder.utf8
    readers[t.NIBBLE_8] = _Decoder.nibbles
    readers[t.HEX_8] = _Decoder.hex
    readers[t.JID_PAIR] = _Decoder.jid_pair
    readers[t.AD_JID] = _Decoder.ad_jid
    readers[t.FB_JID] = _Decoder.fb_jid
    readers[t.INTEROP_JID] = _Decoder.interop_jid
    return tuple(readers)


# Tag byte -> the method reading the string that follows it.
_READERS = _string_readers()
