"""Node -> WhatsApp binary XML, byte-identical to Baileys' encodeBinaryNode (flag byte included)."""

from __future__ import annotations

import re

from wahttp.wa.binary import tokens as t
from wahttp.wa.binary.node import Node
from wahttp.wa.jid import split_wire_jid

_TOKEN_BYTES = t.TOKEN_BYTES
_NIBBLE_RE = re.compile(r"[0-9.\-]+")
_HEX_RE = re.compile(r"[0-9A-F]+")
# Nibble packing re-uses bytes.fromhex: '-' is nibble 10 ('a'), '.' is 11 ('b').
_NIBBLE_TO_HEX = str.maketrans({"-": "a", ".": "b"})
_EMPTY_STRING = bytes((t.BINARY_8, 0))
_MAX_LIST = 0xFFFF
_MAX_BINARY = 0xFFFFFFFF


def encode_node(node: Node) -> bytes:
    """Encode a frame body: flag byte 0 (uncompressed) followed by the node."""
    buf = bytearray(b"\x00")
    _write_node(buf, node)
    return bytes(buf)


def encode_node_body(node: Node) -> bytes:
    """Encode just the node, without the leading flag byte."""
    buf = bytearray()
    _write_node(buf, node)
    return bytes(buf)


def _write_node(buf: bytearray, node: Node) -> None:
    tag = node.tag
    if not tag:
        # Baileys throws at the top level and silently drops tagless children; a tagless
        # node is always a caller bug, so refuse it everywhere.
        raise ValueError("node tag must be a non-empty string")
    attrs = node.attrs
    content = node.content
    _write_list_start(buf, 2 * len(attrs) + (1 if content is None else 2))
    _write_string(buf, tag)
    for key, value in attrs.items():
        _write_string(buf, key)
        _write_string(buf, value)
    if content is None:
        return
    if isinstance(content, list):
        _write_list_start(buf, len(content))
        for child in content:
            _write_node(buf, child)
    elif isinstance(content, bytes | bytearray):
        _write_length(buf, len(content))
        buf += content
    elif isinstance(content, str):
        _write_string(buf, content)
    elif isinstance(content, memoryview):
        _write_binary(buf, content.tobytes())
    else:
        raise TypeError(f"invalid content for <{tag}>: {type(content).__name__}")


def _write_list_start(buf: bytearray, size: int) -> None:
    if size == 0:
        buf.append(t.LIST_EMPTY)
    elif size < 256:
        buf.append(t.LIST_8)
        buf.append(size)
    elif size <= _MAX_LIST:
        buf.append(t.LIST_16)
        buf += size.to_bytes(2, "big")
    else:  # Baileys would silently truncate the size and corrupt the stream
        raise ValueError(f"list too long to encode: {size}")


def _write_length(buf: bytearray, length: int) -> None:
    if length < 256:
        buf.append(t.BINARY_8)
        buf.append(length)
    elif length < 1 << 20:
        buf.append(t.BINARY_20)
        buf += length.to_bytes(3, "big")
    elif length <= _MAX_BINARY:
        buf.append(t.BINARY_32)
        buf += length.to_bytes(4, "big")
    else:
        raise ValueError(f"binary too large to encode: {length}")


def _write_binary(buf: bytearray, data: bytes) -> None:
    _write_length(buf, len(data))
    buf += data


def _write_packed(buf: bytearray, tag: int, hex_digits: str, length: int) -> None:
    """Two characters per byte; an odd length is padded with nibble 15 and flagged by bit 7."""
    buf.append(tag)
    if length & 1:
        buf.append(((length + 1) >> 1) | 0x80)
        buf += bytes.fromhex(hex_digits + "f")
    else:
        buf.append(length >> 1)
        buf += bytes.fromhex(hex_digits)


def _write_string(buf: bytearray, text: str) -> None:
    """Baileys' order: empty, token, nibble, hex, JID (anything with '@'), raw UTF-8."""
    while True:  # loops only for a JID_PAIR whose server part is itself a string to encode
        if not text:
            buf += _EMPTY_STRING
            return
        token = _TOKEN_BYTES.get(text)
        if token is not None:
            buf += token
            return
        length = len(text)
        if length <= t.PACKED_MAX:
            if _NIBBLE_RE.fullmatch(text):
                _write_packed(buf, t.NIBBLE_8, text.translate(_NIBBLE_TO_HEX), length)
                return
            if _HEX_RE.fullmatch(text):
                _write_packed(buf, t.HEX_8, text, length)
                return
        jid = split_wire_jid(text) if "@" in text else None
        if jid is None:
            _write_binary(buf, text.encode("utf-8"))
            return
        if jid.device is not None:
            buf.append(t.AD_JID)
            buf.append(jid.domain_type)
            buf.append(jid.device)
            _write_string(buf, jid.user)  # no '@' in a user part: no further recursion
            return
        buf.append(t.JID_PAIR)
        if jid.user:
            _write_string(buf, jid.user)
        else:
            buf.append(t.LIST_EMPTY)
        text = jid.server
