"""Binary node codec: known Baileys vectors, size boundaries, normalisations and hostile input."""

from __future__ import annotations

import time
import zlib

import pytest

from wahttp.wa.binary import MAX_DEPTH, Node, decode_node, decode_node_body, encode_node
from wahttp.wa.binary import tokens as t
from wahttp.wa.errors import DecodeError
from wahttp.wa.jid import Jid

# Bytes produced by Baileys 7.0.0-rc14's encodeBinaryNode for the same nodes.
BAILEYS_VECTORS = [
    (
        Node("iq", {"id": "1", "type": "get", "xmlns": "w:p", "to": "@s.whatsapp.net"},
             [Node("ping")]),
        "00f80a1908550429165711fa0003f801f80156",
    ),
    (
        Node("x", {"jid": "123:4@lid", "pn": "5511:2@s.whatsapp.net", "h": "7:99@hosted",
                   "hl": "8:1@hosted.lid"}),
        "00f809fc01780cf70104ff82123fec51f70002ff025511fc0168f78063e3fc02686cf78101ecdf",
    ),
    (
        Node("x", {"odd": "12345", "even": "1-.0", "hodd": "ABCDE", "heven": "0F"}),
        "00f809fc0178fc036f6464ff8312345ffc046576656eff021ab0fc04686f6464fb83abcdeffc0568657665"
        "6efb010f",
    ),
    (
        Node("x", {"dbl": "read-self", "d3": "screen_height", "k": "hello"}),
        "00f807fc0178fc0364626cec00fc026433ebfc016bfc0568656c6c6f",
    ),
    (
        Node("x", {"g": "123-456@g.us", "u": "@s.whatsapp.net", "e": ""}),
        "00f807fc0178fc0167faff84123a456f1cfc0175fa0003edebfc00",
    ),
    (Node("x", {}, "hello"), "00f802fc0178fc0568656c6c6f"),
    (Node("x", {}, "true"), "00f802fc01789b"),
    (Node("x", {}, b""), "00f802fc0178fc00"),
    (Node("x", {}, []), "00f802fc017800"),
]  # fmt: skip


@pytest.mark.parametrize(("node", "hex_bytes"), BAILEYS_VECTORS)
def test_known_baileys_vectors(node: Node, hex_bytes: str) -> None:
    assert encode_node(node).hex() == hex_bytes
    assert decode_node(bytes.fromhex(hex_bytes)).tag == node.tag


def test_flag_byte_and_round_trip() -> None:
    node = Node("iq", {"id": "abc", "to": "@s.whatsapp.net"}, [Node("ping")])
    data = encode_node(node)
    assert data[0] == 0
    assert decode_node(data) == node
    assert decode_node_body(data[1:]) == node


@pytest.mark.parametrize(
    "value",
    ["", "1", "12", "123", "-.", "1" * 127, "A", "ABC", "0F", "F" * 127, "abc", "héllo 🙂",
     "@s.whatsapp.net", "123:4@lid", "9:200@hosted", "1:1@hosted.lid", "5:9@s.whatsapp.net",
     "a@b@c", "x@broadcast", "read-self", "screen_height", "s" * 255, "s" * 256, "1" * 128],
)  # fmt: skip
def test_canonical_attr_values_round_trip(value: str) -> None:
    node = Node("x", {"v": value, value or "k": "v"})
    assert decode_node(encode_node(node)) == node


def test_packing_odd_and_even_lengths() -> None:
    body = encode_node(Node("x", {"v": "12345"}))
    assert body.endswith(bytes([t.NIBBLE_8, 0x83, 0x12, 0x34, 0x5F]))
    body = encode_node(Node("x", {"v": "-.12"}))
    assert body.endswith(bytes([t.NIBBLE_8, 0x02, 0xAB, 0x12]))
    body = encode_node(Node("x", {"v": "ABC"}))
    assert body.endswith(bytes([t.HEX_8, 0x82, 0xAB, 0xCF]))
    # Over 127 characters is too long to pack: raw bytes.
    body = encode_node(Node("x", {"v": "1" * 128}))
    assert body.endswith(bytes([t.BINARY_8, 128]) + b"1" * 128)


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, bytes([t.BINARY_8, 0])),
        (255, bytes([t.BINARY_8, 255])),
        (256, bytes([t.BINARY_20, 0x00, 0x01, 0x00])),
        ((1 << 20) - 1, bytes([t.BINARY_20, 0x0F, 0xFF, 0xFF])),
        (1 << 20, bytes([t.BINARY_32, 0x00, 0x10, 0x00, 0x00])),
    ],
)
def test_binary_length_boundaries(size: int, header: bytes) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    node = Node("x", {}, payload)
    data = encode_node(node)
    assert data[6 : 6 + len(header)] == header  # after 00, f8 02 and the tag fc 01 78
    assert decode_node(data) == node


def test_binary_length_boundaries_for_strings() -> None:
    for size, tag in ((255, t.BINARY_8), (256, t.BINARY_20), (1 << 20, t.BINARY_32)):
        node = Node("x", {"v": "s" * size})
        data = encode_node(node)
        assert data[7] == tag
        assert decode_node(data) == node


@pytest.mark.parametrize(
    ("count", "header"),
    [
        (0, bytes([t.LIST_EMPTY])),
        (1, bytes([t.LIST_8, 1])),
        (255, bytes([t.LIST_8, 255])),
        (256, bytes([t.LIST_16, 1, 0])),
        (65535, bytes([t.LIST_16, 255, 255])),
    ],
)
def test_child_list_sizes(count: int, header: bytes) -> None:
    node = Node("x", {}, [Node("a")] * count)
    data = encode_node(node)
    assert data[3:].startswith(bytes([252, 1, ord("x")]) + header)
    assert decode_node(data) == node


def test_attribute_list_uses_list_16() -> None:
    node = Node("x", {f"k{i}": "v" for i in range(128)})  # 2 * 128 + 1 items
    data = encode_node(node)
    assert data[1:4] == bytes([t.LIST_16, 1, 1])
    assert decode_node(data) == node
    assert list(decode_node(data).attrs) == list(node.attrs)  # insertion order is kept


def test_every_double_byte_dictionary() -> None:
    for number, table in enumerate(t.DOUBLE_BYTE_TOKENS):
        for index in (0, 127, 255):
            data = encode_node(Node("x", {"v": table[index]}))
            assert data.endswith(bytes([t.DICTIONARY_0 + number, index]))
            assert decode_node(data).attrs["v"] == table[index]


def test_token_tables() -> None:
    assert len(t.SINGLE_BYTE_TOKENS) == 236 and t.SINGLE_BYTE_TOKENS[0] == ""
    assert [len(table) for table in t.DOUBLE_BYTE_TOKENS] == [256] * 4
    assert t.TOKEN_BYTES["s.whatsapp.net"] == bytes([3])
    assert t.TOKEN_INDEX["read-self"] == (0, 0)
    assert "" not in t.TOKEN_BYTES


def test_empty_user_jid_round_trips() -> None:
    node = Node("iq", {"to": "@s.whatsapp.net"})
    data = encode_node(node)
    assert bytes([t.JID_PAIR, t.LIST_EMPTY, 3]) in data
    assert decode_node(data).attr_jid("to") == Jid.server_jid()


def test_ad_jid_domain_types() -> None:
    for text, domain in (("1:2@s.whatsapp.net", 0), ("1:2@lid", 1), ("1:2@hosted", 128),
                         ("1:2@hosted.lid", 129)):  # fmt: skip
        data = encode_node(Node("x", {"v": text}))
        assert data[7:10] == bytes([t.AD_JID, domain, 2])
        assert decode_node(data).attrs["v"] == text


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        # Baileys' JID handling is lossy; decoders (theirs and ours) all see the right side.
        ("123:0@s.whatsapp.net", "123@s.whatsapp.net"),  # AD_JID device 0 is not printed
        ("123_1:2@s.whatsapp.net", "123:2@lid"),  # agent 1 becomes the lid domain
        ("123_1@s.whatsapp.net", "123@s.whatsapp.net"),  # JID_PAIR drops the agent
        ("123:2@g.us", "123:2@s.whatsapp.net"),  # AD_JID servers come from the domain type
        ("1-123:4@interop", "1-123:4@s.whatsapp.net"),  # never encoded as INTEROP_JID
        ("a:300@c", "a:44@s.whatsapp.net"),  # device truncated to a byte
        ("a:@b", "a@b"),
    ],
)
def test_documented_jid_normalisations(sent: str, received: str) -> None:
    assert decode_node(encode_node(Node("x", {"v": sent}))).attrs["v"] == received


def test_documented_content_normalisations() -> None:
    # String content is written like any string: raw text comes back as bytes, while tokens,
    # packed numbers and JIDs come back as str (exactly what Baileys returns).
    assert decode_node(encode_node(Node("x", {}, "hello"))).content == b"hello"
    assert decode_node(encode_node(Node("x", {}, ""))).content == b""
    assert decode_node(encode_node(Node("x", {}, "true"))).content == "true"
    assert decode_node(encode_node(Node("x", {}, "123"))).content == "123"
    assert decode_node(encode_node(Node("x", {}, "1:2@lid"))).content == "1:2@lid"


def test_prototype_names_are_plain_strings() -> None:
    # Deliberate divergence: Baileys' token map is a plain JS object, so "constructor" is
    # "found" in it and sent as byte 0 (decoded as ""). We send the actual string.
    data = encode_node(Node("x", {"constructor": "toString"}))
    assert data.hex() == "00f803fc0178fc0b636f6e7374727563746f72fc08746f537472696e67"
    assert decode_node(data).attrs == {"constructor": "toString"}


def test_encoder_rejects_invalid_nodes() -> None:
    with pytest.raises(ValueError):
        encode_node(Node(""))
    with pytest.raises(ValueError):
        encode_node(Node("x", {}, [Node("")]))
    with pytest.raises(ValueError):
        encode_node(Node("x", {}, [Node("a")] * 65536))
    with pytest.raises(TypeError):
        encode_node(Node("x", {}, 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # lone surrogates cannot be UTF-8 encoded
        encode_node(Node("x", {"v": "\ud800"}))


def test_bytes_like_content() -> None:
    expected = encode_node(Node("x", {}, b"abc"))
    for data in (bytearray(b"abc"), memoryview(b"abc")):
        assert encode_node(Node("x", {}, data)) == expected  # type: ignore[arg-type]


# --- decoder ------------------------------------------------------------------------------


def _frame(*body: int) -> bytes:
    return bytes([0, *body])


def test_compressed_frames() -> None:
    node = Node("iq", {"id": "1"}, [Node("item", {}, b"x" * 1000)])
    body = encode_node(node)[1:]
    assert decode_node(b"\x02" + zlib.compress(body)) == node
    with pytest.raises(DecodeError):
        decode_node(b"\x02" + zlib.compress(body)[:-3])  # truncated stream
    with pytest.raises(DecodeError):
        decode_node(b"\x02" + body)  # not zlib at all
    bomb = zlib.compress(bytes([t.LIST_8, 2, 1, t.BINARY_32]) + b"\x00" * (8 << 20))
    with pytest.raises(DecodeError):
        decode_node(b"\x02" + bomb)


def test_fb_and_interop_jids() -> None:
    # <x v=FB_JID("123", device 0, "msgr")> and INTEROP_JID("5", device 2, integrator 7, "x")
    fb = _frame(t.LIST_8, 3, 0xFC, 1, ord("x"), 0xFC, 1, ord("v"),
                t.FB_JID, t.NIBBLE_8, 0x82, 0x12, 0x3F, 0, 0, 0xFC, 4, *b"msgr")  # fmt: skip
    assert decode_node(fb).attrs["v"] == "123:0@msgr"  # FB_JID prints device 0
    interop = _frame(t.LIST_8, 3, 0xFC, 1, ord("x"), 0xFC, 1, ord("v"),
                     t.INTEROP_JID, 0xFC, 1, ord("5"), 0, 2, 0, 7, 0xFC, 1, ord("x"))  # fmt: skip
    assert decode_node(interop).attrs["v"] == "7-5:2@x"
    # Without a readable server Baileys falls back to "interop" and rewinds.
    no_server = _frame(t.LIST_8, 3, 0xFC, 1, ord("x"), 0xFC, 1, ord("v"),
                       t.INTEROP_JID, 0xFC, 1, ord("5"), 0, 2, 0, 7)  # fmt: skip
    assert decode_node(no_server).attrs["v"] == "7-5:2@interop"


def test_decoder_quirks_match_baileys() -> None:
    # Trailing bytes are ignored; invalid UTF-8 becomes U+FFFD; odd nibble padding dropped.
    data = _frame(t.LIST_8, 3, 0xFC, 1, ord("x"), 0xFC, 1, ord("v"), 0xFC, 2, 0xFF, 0x61)
    assert decode_node(data + b"junk").attrs["v"] == "\ufffda"
    assert (
        decode_node(_frame(t.LIST_8, 2, 0xFC, 1, ord("x"), t.NIBBLE_8, 0x81, 0xF1)).content
        == "\x00"
    )
    # Duplicate attributes: the last value wins, as with a JavaScript object.
    dup = _frame(t.LIST_8, 5, 0xFC, 1, ord("x"), 8, 0xFC, 1, ord("a"), 8, 0xFC, 1, ord("b"))
    assert decode_node(dup).attrs == {"id": "b"}


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00",
        _frame(t.LIST_8),
        _frame(t.LIST_8, 0),
        _frame(t.LIST_EMPTY, 1),
        _frame(t.LIST_8, 1, 0),  # empty tag
        _frame(t.LIST_8, 1, 240),  # unused tag value
        _frame(t.LIST_8, 1, t.BINARY_32, 0xFF, 0xFF, 0xFF, 0xFF),  # forged length
        _frame(t.LIST_8, 1, t.BINARY_20, 0x0F, 0xFF, 0xFF, 1),
        _frame(t.LIST_8, 1, t.NIBBLE_8, 0x01, 0xC0),  # nibble 12 is invalid
        _frame(t.LIST_8, 1, t.NIBBLE_8, 0x7F),
        _frame(t.LIST_8, 1, t.DICTIONARY_3),
        _frame(t.LIST_8, 1, t.JID_PAIR, 0xFC, 1, 0x61, 0),  # JID pair without server
        _frame(t.LIST_8, 2, 0xFC, 1, 0x61, t.LIST_16, 0xFF, 0xFF),
        _frame(t.LIST_8, 2, 0xFC, 1, 0x61, t.LIST_8, 1, t.LIST_8, 2, 0xFC, 1, 0x62, 0xF0),
        _frame(t.LIST_8, 3, 0xFC, 1, 0x61, 0xFC),
    ],
)
def test_malformed_input_raises_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_node(frame)


def test_deep_nesting_is_bounded() -> None:
    node = Node("leaf")
    for _ in range(MAX_DEPTH):
        node = Node("n", {}, [node])
    assert decode_node(encode_node(node)) == node
    with pytest.raises(DecodeError):
        decode_node(encode_node(Node("n", {}, [node])))
    # Thousands of levels of nested nodes or JID pairs: DecodeError, not RecursionError.
    deep_nodes = _frame(*([t.LIST_8, 2, 0xFC, 1, 0x61, t.LIST_8, 1] * 5000))
    with pytest.raises(DecodeError):
        decode_node(deep_nodes)
    deep_jid = _frame(t.LIST_8, 1, *([t.JID_PAIR, 0xFC, 1, 0x61] * 5000))
    with pytest.raises(DecodeError):
        decode_node(deep_jid)


def test_interop_rewinds_cannot_blow_up() -> None:
    # Nested INTEROP_JIDs whose servers all fail would make a naive decoder re-parse the
    # same bytes over and over; the rewind budget turns that into a quick DecodeError.
    chunk = [t.INTEROP_JID, t.INTEROP_JID, 0xFC, 1, 0x61, 0, 1, 0, 1]
    frame = _frame(t.LIST_8, 3, 0xFC, 1, 0x61, 0xFC, 1, 0x62, *(chunk * 30), 0xF0)
    start = time.perf_counter()
    with pytest.raises(DecodeError):
        decode_node(frame)
    assert time.perf_counter() - start < 2


# --- Node accessors ---------------------------------------------------------------------


def test_node_accessors() -> None:
    node = Node(
        "iq",
        {"from": "1:2@s.whatsapp.net", "n": "42", "bad": "x", "nojid": "abc"},
        [Node("a", {}, b"k"), Node("b"), Node("a", {}, "s")],
    )
    assert node.attr("n") == "42" and node.attr("missing") is None
    assert node.attr("missing", "d") == "d"
    assert node.attr_jid("from") == Jid("1", "s.whatsapp.net", 2)
    assert node.attr_jid("missing") is None and node.attr_jid("nojid") is None
    assert node.attr_int("n", 0) == 42 and node.attr_int("bad", 7) == 7
    assert node.attr_int("missing", 3) == 3
    assert [c.tag for c in node.children()] == ["a", "b", "a"]
    assert len(node.children("a")) == 2 and node.children("zz") == []
    child = node.child("a")
    assert child is not None and child.content_bytes() == b"k"
    assert node.child("zz") is None and node.content_bytes() is None
    assert node.children("a")[1].content_bytes() == b"s"
    assert Node("x", {}, b"abc").children() == [] and Node("x").child("a") is None


def test_node_equality_and_repr_hide_payloads() -> None:
    assert Node("a", {"x": "1"}, b"z") == Node("a", {"x": "1"}, b"z")
    assert Node("a", {}, b"z") != Node("a", {}, "z")
    secret = Node("enc", {"v": "2"}, b"\x13\x37" * 40)
    text = repr(Node("message", {"id": "1"}, [secret, Node("s", {}, "x" * 100)]))
    assert "1337" not in text and "\\x13" not in text and "[80 bytes]" in text
    assert "x" * 50 not in text and "[str len=100]" in text
    assert repr(Node("ping")) == "<ping/>"
