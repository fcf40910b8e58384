"""Baileys' BufferJSON, the one dialect of JSON its auth state is written in, in both forms.

Baileys reads an auth file with `JSON.parse(text, BufferJSON.reviver)` and writes it with
`JSON.stringify(value, BufferJSON.replacer)`; `js_json_loads` and `js_json_dumps` are those two
calls, character for character as V8 does them, so a value read and written back gives the same
bytes (multifile.py's folders). `to_json` / `from_json` are the same rules on values already
parsed, for the database's jsonb columns (server/store.py): bytes become
{"type": "Buffer", "data": "<base64>"}; on read, `revive` (the reviver) turns that shape and a
stringified Uint8Array back into bytes. `b64decode` is Node's `Buffer.from(text, 'base64')`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

JSON = Any


def to_json(value: JSON) -> JSON:
    """Replace every bytes value (recursively) with Baileys' Buffer object."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"type": "Buffer", "data": b64encode(bytes(value))}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(value: JSON) -> JSON:
    """Revive Baileys' Buffers in an already-parsed value: `revive`, applied bottom-up as
    JSON.parse applies the reviver, so a value reads back the same from a row as from a file.

    One addition for rows written without the replacer (a Buffer's own toJSON, as legacy
    auth_json may hold): {"type": "Buffer", "data": [numbers]} is the bytes the replacer
    would write for it (`js_json_dumps` writes it so too).
    """
    if isinstance(value, dict):
        obj = {k: from_json(v) for k, v in value.items()}
        data = obj.get("data")
        if obj.get("type") == "Buffer" and isinstance(data, list) and _all_numbers(data):
            return bytes(_to_uint8(v) for v in data)
        return revive(obj)
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def b64encode(data: bytes) -> str:
    """Standard, padded base64 (what Buffer.toString('base64') writes)."""
    return base64.b64encode(data).decode()


_CANONICAL_B64 = re.compile("(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_NOT_B64 = re.compile("[^A-Za-z0-9+/]")
URL_SAFE = str.maketrans("-_", "+/")  # base64url digits as standard ones


def b64decode(text: str) -> bytes:
    """`Buffer.from(text, 'base64')`, which never fails: both alphabets, other characters
    skipped, decoding stops at the first '=', a dangling sixth of a byte is dropped."""
    if _CANONICAL_B64.fullmatch(text):
        return base64.b64decode(text)
    digits = _NOT_B64.sub("", text.partition("=")[0].translate(URL_SAFE))
    if len(digits) % 4 == 1:
        digits = digits[:-1]
    return base64.b64decode(digits + "=" * (-len(digits) % 4))


def js_json_loads(text: str) -> Any:
    """`JSON.parse(text, BufferJSON.reviver)`: JSON as Node reads it, Buffers revived as bytes.

    Revived as bytes, like Baileys: {"type":"Buffer","data":"<base64>"} (decoded as leniently as
    Buffer.from) and objects whose keys all parseInt and whose values are all numbers (a
    stringified Uint8Array; values taken modulo 256). Integers past 2**53 read as the double
    JavaScript gets (as int), past the double range as inf. Raises ValueError
    (json.JSONDecodeError) where JSON.parse throws, on NaN/Infinity literals too.
    """
    try:
        return json.loads(
            text,
            object_hook=revive,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
        )
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def js_json_dumps(value: Any) -> str:
    """`JSON.stringify(value, BufferJSON.replacer)`, character for character.

    bytes (and dicts with "type": "Buffer") become {"type":"Buffer","data":"<base64>"}. Like V8:
    no whitespace; object keys that are array indices first in ascending order, then the rest in
    insertion order; numbers in JavaScript's shortest form (1.0 -> 1, 1e21 -> 1e+21), NaN and
    infinities as null, ints past 2**53 rounded to a double first; strings escape only '"', '\\'
    and control characters, and lone surrogates as \\udxxx (ES2019), everything else raw.
    """
    out: list[str] = []
    _dump(value, out, set())
    return "".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_int(text: str) -> int | float:
    # A JavaScript number is a double: past 2**53 an integer literal reads as the nearest
    # double (kept as int here), and past the double range as Infinity. This also spares
    # int() from parsing thousands of digits.
    if len(text) <= 15:
        return int(text)
    number = float(text)
    return int(number) if math.isfinite(number) else number


# parseInt(key, 10) is not NaN: optional JS white space, an optional sign, then a digit.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_PARSE_INT_OK = re.compile(f"[{_JS_SPACE}]*[+-]?[0-9]")
_ARRAY_INDEX = re.compile("0|[1-9][0-9]{0,9}")
_MAX_ARRAY_INDEX = 2**32 - 2


def revive(obj: dict[str, Any]) -> Any:
    """BufferJSON.reviver for one object (json calls it bottom-up, as JSON.parse does)."""
    if obj.get("type") == "Buffer" and isinstance(obj.get("data"), str):
        return b64decode(obj["data"])
    if obj and all(_PARSE_INT_OK.match(k) for k in obj):
        values = [obj[k] for k in _js_key_order(obj)]
        if all(_is_number(v) for v in values):
            return bytes(_to_uint8(v) for v in values)
    return obj


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_uint8(value: float) -> int:
    """What storing a number into a Uint8Array keeps (ECMAScript ToUint8)."""
    if isinstance(value, int):
        return value & 0xFF
    if math.isnan(value) or math.isinf(value):
        return 0
    return math.trunc(value) & 0xFF


def _is_array_index(key: str) -> bool:
    return _ARRAY_INDEX.fullmatch(key) is not None and int(key) <= _MAX_ARRAY_INDEX


def _js_key_order(keys: Iterable[str]) -> list[str]:
    """The order V8 enumerates an object's keys: array indices ascending, then the rest."""
    indices: list[str] = []
    names: list[str] = []
    for key in keys:
        (indices if _is_array_index(key) else names).append(key)
    indices.sort(key=int)
    return indices + names


def _dump(value: Any, out: list[str], active: set[int]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_js_quote(value))
    elif isinstance(value, int):
        out.append(_js_int(value))
    elif isinstance(value, float):
        out.append(_js_number(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        out.append(_buffer_json(bytes(value)))
    elif isinstance(value, Mapping):
        if value.get("type") == "Buffer":
            out.append(_buffer_json(_buffer_dict_bytes(value)))
            return
        _enter(value, active)
        out.append("{")
        first = True
        for key in _js_key_order(_str_keys(value)):
            if not first:
                out.append(",")
            first = False
            out.append(_js_quote(key))
            out.append(":")
            _dump(value[key], out, active)
        out.append("}")
        active.discard(id(value))
    elif isinstance(value, list | tuple):
        _enter(value, active)
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _dump(item, out, active)
        out.append("]")
        active.discard(id(value))
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _enter(container: object, active: set[int]) -> None:
    if id(container) in active:
        raise ValueError("circular reference: JSON.stringify cannot write it")
    active.add(id(container))


def _str_keys(mapping: Mapping[Any, Any]) -> Iterator[str]:
    for key in mapping:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be strings, not {type(key).__name__}")
        yield key


def _buffer_json(data: bytes) -> str:
    return '{"type":"Buffer","data":"' + b64encode(data) + '"}'


def _buffer_dict_bytes(value: Mapping[str, Any]) -> bytes:
    """The bytes BufferJSON.replacer writes for an object whose "type" is "Buffer"."""
    data = value.get("data")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        # Already BufferJSON-wrapped (bufferjson.to_json output): keep the bytes it stands for.
        # Node would take the string as UTF-8 here (and throw on ""), but it never holds such
        # an object: its reviver turns every one into a Buffer first.
        return b64decode(data)
    if isinstance(data, list | tuple) and all(_is_number(v) for v in data):
        return bytes(_to_uint8(v) for v in data)
    raise ValueError("an object with type 'Buffer' needs its bytes in 'data'")


_QUOTE_RE = re.compile('[\x00-\x1f"\\\\]|[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]')
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _quote_one(match: re.Match[str]) -> str:
    text = match.group()
    if len(text) == 2:  # a surrogate pair held as two code points: one character in UTF-16
        return chr(0x10000 + ((ord(text[0]) - 0xD800) << 10) + (ord(text[1]) - 0xDC00))
    return _SHORT_ESCAPES.get(text) or f"\\u{ord(text):04x}"


def _js_quote(text: str) -> str:
    return '"' + _QUOTE_RE.sub(_quote_one, text) + '"'


def _js_int(value: int) -> str:
    if -(2**53) <= value <= 2**53:
        return str(int(value))
    try:
        return _js_number(float(value))
    except OverflowError:  # beyond any double: Infinity in JavaScript
        return "null"


def _js_number(value: float) -> str:
    """ECMAScript Number::toString for a double (repr gives the same shortest digits)."""
    if math.isnan(value) or math.isinf(value):
        return "null"
    if value == 0:
        return "0"  # -0 too
    if value < 0:
        return "-" + _js_number(-value)
    mantissa, _, exp = repr(float(value)).partition("e")
    head, _, tail = mantissa.partition(".")
    digits = head + tail
    point = len(head) + (int(exp) if exp else 0)  # value = 0.digits * 10**point
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    s = significant.rstrip("0")
    k = len(s)
    if k <= point <= 21:
        return s + "0" * (point - k)
    if 0 < point <= 21:
        return s[:point] + "." + s[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + s
    e = point - 1
    return (s if k == 1 else s[0] + "." + s[1:]) + ("e+" if e >= 0 else "e-") + str(abs(e))


def _all_numbers(values: Iterable[object]) -> bool:
    return all(_is_number(v) for v in values)


def writable(value: Any) -> bool:
    """Whether BufferJSON.replacer can write `value` back: an object typed "Buffer" that the
    reviver left as it was (no base64 string in "data") needs its bytes as a list of numbers."""
    if isinstance(value, dict):
        if value.get("type") == "Buffer":
            try:
                _buffer_dict_bytes(value)
            except ValueError:
                return False
        return all(writable(v) for v in value.values())
    if isinstance(value, list):
        return all(writable(v) for v in value)
    return True
