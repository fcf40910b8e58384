"""One BufferJSON dialect: a value reads back the same from a database row (`from_json` on
parsed jsonb) as from an auth file (`js_json_loads`, Baileys' reviver), byte maps included."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wahttp.wa.auth.bufferjson import b64decode, from_json, js_json_dumps, js_json_loads, to_json

_keys = st.sampled_from(["0", "1", "2", "10", "01", "-1", " 3", "a", "type", "data"])
_leaves = st.none() | st.booleans() | st.integers(-300, 300) | st.sampled_from([1.5, -0.5, "x"])
_buffers = st.binary(max_size=8).map(lambda b: {"type": "Buffer", "data": to_json(b)["data"]})
_values = st.recursive(
    _leaves | _buffers,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@given(_values)
def test_a_row_and_a_file_revive_the_same_value(value: Any) -> None:
    text = json.dumps(value)
    assert from_json(json.loads(text)) == js_json_loads(text)


def test_byte_maps_follow_the_reviver_in_both_paths() -> None:
    # Before one dialect the row path kept these as objects; Baileys (and a file) read bytes.
    for text, expected in [
        ('{"0": 300, "1": 1}', b"\x2c\x01"),  # ToUint8
        ('{"0": 1.5}', b"\x01"),
        ('{"1": 7, "0": -1}', b"\xff\x07"),  # indices in ascending order
    ]:
        assert js_json_loads(text) == expected
        assert from_json(json.loads(text)) == expected
    assert from_json({"0": True}) == {"0": True}  # not numbers: kept


def test_a_buffers_own_tojson_is_read_as_its_bytes_from_rows_only() -> None:
    # JSON.stringify without the replacer (legacy rows) writes {"type":"Buffer","data":[...]}:
    # the replacer writes it back as those bytes, so a row reads it so; a file keeps the object
    # as Baileys' reviver does, and js_json_dumps writes both the same.
    legacy = {"type": "Buffer", "data": [1, 2, 259]}
    assert from_json(legacy) == b"\x01\x02\x03"
    assert js_json_loads(json.dumps(legacy)) == legacy
    assert js_json_dumps(legacy) == js_json_dumps(b"\x01\x02\x03")


def test_base64_is_decoded_as_buffer_from_does() -> None:
    assert b64decode("AQID") == b"\x01\x02\x03"
    assert b64decode("_-8") == b"\xff\xef"
    assert b64decode("AQ==AQ==") == b"\x01"  # stops at the first '='
    assert from_json({"type": "Buffer", "data": "A Q\nID"}) == b"\x01\x02\x03"
