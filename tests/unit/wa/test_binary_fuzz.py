"""Property tests: canonical nodes round-trip; arbitrary bytes only ever raise DecodeError."""

from __future__ import annotations

import contextlib
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wahttp.wa.binary import Node, decode_node, encode_node
from wahttp.wa.binary.tokens import DOUBLE_BYTE_TOKENS, SINGLE_BYTE_TOKENS
from wahttp.wa.errors import DecodeError

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ALL_TOKENS = SINGLE_BYTE_TOKENS[1:] + tuple(
    token for table in DOUBLE_BYTE_TOKENS for token in table
)
# Index into the tables rather than sampled_from(...): keeps Hypothesis' reprs small.
_tokens = st.integers(0, len(_ALL_TOKENS) - 1).map(_ALL_TOKENS.__getitem__)
_nibbles = st.text("0123456789-.", min_size=1, max_size=140)
_hex = st.text("0123456789ABCDEF", min_size=1, max_size=140)
_numbers = st.integers(min_value=0, max_value=10**30).map(str)
# Canonical JID parts: no separators in users, a device of 1..255 only on AD_JID servers.
_users = st.text(st.characters(exclude_characters=":_@", exclude_categories=["Cs"]), max_size=20)
_pair_servers = st.sampled_from(["s.whatsapp.net", "g.us", "lid", "broadcast", "newsletter",
                                 "c.us", "call", "hosted", "bot", "x.y"])  # fmt: skip
_ad_servers = st.sampled_from(["s.whatsapp.net", "lid", "hosted", "hosted.lid"])
_pair_jids = st.builds("{}@{}".format, _users, _pair_servers)
_ad_jids = st.builds("{}:{}@{}".format, _users, st.integers(1, 255), _ad_servers)
_raw = st.text(st.characters(exclude_characters="@", exclude_categories=["Cs"]), max_size=300)
_strings = _tokens | _nibbles | _hex | _numbers | _pair_jids | _ad_jids | _raw
# Content given as str must come back as str: only tokens, packed strings and JIDs do.
_packable = st.integers(1, 127)
_str_content = (
    _tokens
    | _packable.flatmap(lambda n: st.text("0123456789-.", min_size=n, max_size=n))
    | _packable.flatmap(lambda n: st.text("0123456789ABCDEF", min_size=n, max_size=n))
    | _pair_jids
    | _ad_jids
)
_tags = _strings.filter(bool)


def _nodes(children: st.SearchStrategy[list[Node]]) -> st.SearchStrategy[Node]:
    content = st.none() | st.binary(max_size=600) | _str_content | children
    return st.builds(Node, _tags, st.dictionaries(_strings, _strings, max_size=6), content)


_leaf = _nodes(st.just([]))
_trees = st.recursive(_leaf, lambda inner: _nodes(st.lists(inner, max_size=5)), max_leaves=25)


@FUZZ
@given(_trees)
def test_canonical_nodes_round_trip(node: Node) -> None:
    data = encode_node(node)
    decoded = decode_node(data)
    assert decoded == node
    assert list(decoded.attrs) == list(node.attrs)
    assert encode_node(decoded) == data


@FUZZ
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=60))
def test_any_string_encodes_and_decodes_without_surprises(text: str) -> None:
    # Non-canonical strings may be normalised (or be undecodable like "abc@"), never crash.
    data = encode_node(Node("x", {text: text}, text))
    try:
        decode_node(data)
    except DecodeError:
        assert "@" in text


def _decode_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_node(data)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    _decode_only_decode_error(data)
    _decode_only_decode_error(b"\x00" + data)
    _decode_only_decode_error(b"\x02" + zlib.compress(data))


@FUZZ
@given(_trees, st.data())
def test_mutated_encodings_raise_only_decode_error(node: Node, data: st.DataObject) -> None:
    frame = bytearray(encode_node(node))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(frame)))
        action = data.draw(st.sampled_from(["set", "insert", "truncate"]))
        if action == "set" and pos < len(frame):
            frame[pos] = data.draw(st.integers(0, 255))
        elif action == "insert":
            frame.insert(pos, data.draw(st.integers(0, 255)))
        else:
            del frame[pos:]
    _decode_only_decode_error(bytes(frame))
