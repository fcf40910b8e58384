"""The useMultiFileAuthState folder codec: Node-exact JSON, file names, errors, safety, stores."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wahttp.wa.auth import Creds, Me, MemoryAuthStore, SignalIdentity, new_creds
from wahttp.wa.auth.bufferjson import b64decode as node_b64decode
from wahttp.wa.auth.bufferjson import b64encode, js_json_dumps, js_json_loads
from wahttp.wa.auth.filenames import file_key_id
from wahttp.wa.auth.mirror import FolderMirror
from wahttp.wa.auth.multifile import (
    MAX_FILE_SIZE,
    AuthFolderError,
    SkippedFile,
    export_folder,
    import_folder,
    key_file_name,
    read_folder,
    write_folder,
)
from wahttp.wa.auth.store import KeyValue
from wahttp.wa.errors import StoreError
from wahttp.wa.proto import adv_pb2

SENDER_KEY_ID = file_key_id("120363025246125486@g.us::15551234567::0")
APP_KEY_ID = file_key_id("AAAAAB/x+Q==")


def _creds() -> Creds:
    creds = new_creds()
    creds.me = Me("15551234567:12@s.whatsapp.net", "123456789012345:12@lid", "Zoë 🙂")
    creds.account = adv_pb2.ADVSignedDeviceIdentity(
        details=b"d" * 40, accountSignatureKey=b"k" * 32, accountSignature=b"s" * 64
    )
    creds.signal_identities = [SignalIdentity("123456789012345:12@lid", 0, b"\x05" + b"i" * 32)]
    creds.routing_info = b"\x08\x01\x08\x05"
    creds.platform = "smba"
    creds.extra["myAppStateKeyId"] = "AAAAAB/x+Q=="
    return creds


def _keys() -> dict[str, dict[str, Any]]:
    return {
        "pre-key": {"1": {"private": b"\x01" * 32, "public": b"\x02" * 32}},
        "session": {
            "15551234567.0": {"_sessions": {"BQ==": {"registrationId": 42}}, "version": "v1"},
        },
        "sender-key": {SENDER_KEY_ID: b'[{"senderKeyId":7}]'},
        "sender-key-memory": {"120363025246125486@g.us": {"15551234567:12@s.whatsapp.net": True}},
        "app-state-sync-key": {
            APP_KEY_ID: {
                "keyData": b64encode(b"\x07" * 32),
                "fingerprint": {"rawId": 1, "currentIndex": 2, "deviceIndexes": [0, 12]},
                "timestamp": "1700000000123",
            }
        },
        "app-state-sync-version": {"regular_high": {"version": 3, "hash": bytes(128)}},
        "lid-mapping": {"15551234567": "123456789012345", "123456789012345_reverse": "15551234567"},
        "device-list": {"15551234567": ["0", "12"]},
        "tctoken": {"15551234567@s.whatsapp.net": {"token": b"t" * 20, "timestamp": "1700000000"}},
        "identity-key": {"15551234567.0": b"\x05" + b"p" * 32},
    }


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# --- js_json_dumps: JSON.stringify(value, BufferJSON.replacer) -------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, "0.1"),
        (1.0, "1"),
        (-0.0, "0"),
        (3.5, "3.5"),
        (-2.25, "-2.25"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (math.nan, "null"),
        (math.inf, "null"),
        (-math.inf, "null"),
        (2**53, "9007199254740992"),
        (2**53 + 1, "9007199254740992"),  # a JS number is a double
        (-(2**53) - 1, "-9007199254740992"),
        (10**21, "1e+21"),
        (10**400, "null"),  # Infinity
        (True, "true"),
        (False, "false"),
        (None, "null"),
    ],
)
def test_numbers_and_literals_print_like_javascript(value: Any, expected: str) -> None:
    assert js_json_dumps(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", '"plain"'),
        ('q"b\\s/', '"q\\"b\\\\s/"'),
        ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
        ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),
        ("\x7f\u2028\u2029", '"\x7f\u2028\u2029"'),  # JSON.stringify leaves these raw
        ("Zoë 🙂 漢字", '"Zoë 🙂 漢字"'),
        ("a\ud800b\udfffc", '"a\\ud800b\\udfffc"'),  # lone surrogates escaped (ES2019)
        ("\udc00\ud800", '"\\udc00\\ud800"'),  # reversed pair: two lone ones
        ("\ud83d\ude00", '"😀"'),  # a pair held as two code points is one character
    ],
)
def test_strings_escape_like_javascript(text: str, expected: str) -> None:
    out = js_json_dumps(text)
    assert out == expected
    out.encode("utf-8")  # always encodable, unlike json.dumps(..., ensure_ascii=False)


def test_objects_are_compact_with_index_keys_first() -> None:
    value = {"b": 1, "2": 2, "1": [3, {"z": None}], "01": 4, "4294967295": 5, "4294967294": 6}
    assert js_json_dumps(value) == (
        '{"1":[3,{"z":null}],"2":2,"4294967294":6,"b":1,"01":4,"4294967295":5}'
    )
    assert js_json_dumps((1, "x")) == '[1,"x"]'
    assert js_json_dumps({}) == "{}" and js_json_dumps([]) == "[]"


def test_bytes_become_buffer_objects() -> None:
    buf = '{"type":"Buffer","data":"AQID"}'
    for value in (b"\x01\x02\x03", bytearray(b"\x01\x02\x03"), memoryview(b"\x01\x02\x03")):
        assert js_json_dumps(value) == buf
    assert js_json_dumps({"k": [b""]}) == '{"k":[{"type":"Buffer","data":""}]}'
    # Objects typed "Buffer" are rewritten the way the replacer does.
    assert js_json_dumps({"type": "Buffer", "data": [1, 2, 3], "x": 1}) == buf
    assert js_json_dumps({"type": "Buffer", "data": [1, 2, 259, -1]}) == (
        '{"type":"Buffer","data":"AQID/w=="}'
    )
    assert js_json_dumps({"type": "Buffer", "data": "AQID"}) == buf  # already wrapped
    with pytest.raises(ValueError, match="Buffer"):
        js_json_dumps({"type": "Buffer"})


def test_unserializable_values_are_refused() -> None:
    with pytest.raises(TypeError):
        js_json_dumps({1, 2})
    with pytest.raises(TypeError, match="keys must be strings"):
        js_json_dumps({1: "a"})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="circular"):
        js_json_dumps(loop)


_safe_text = st.text(st.characters(exclude_categories=["Cs"]))
_plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | _safe_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet="abcxyz_-é", max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_plain_json)
def test_matches_compact_json_dumps_where_python_agrees_with_v8(value: Any) -> None:
    # No floats, no surrogates, no index-like keys: here Python and V8 print the same text.
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert js_json_dumps(value) == expected


_any_text = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])))
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _any_text
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_any_text, children, max_size=4)
    ),
    max_leaves=25,
)


def _as_js(value: Any) -> Any:
    """What JavaScript holds after a round trip: UTF-16 strings (pairs joined)."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(value, list):
        return [_as_js(v) for v in value]
    if isinstance(value, dict):
        return {_as_js(k): _as_js(v) for k, v in value.items()}
    return value


@given(_json_values)
def test_dumps_then_loads_round_trips(value: Any) -> None:
    text = js_json_dumps(value)
    text.encode("utf-8")
    back = js_json_loads(text)
    if _has_byte_map(value):
        # Objects of numbers revive as bytes, as in Baileys; from then on the text is stable.
        text = js_json_dumps(back)
        back = js_json_loads(text)
    else:
        assert back == _as_js(value)
    assert js_json_dumps(back) == text  # what was read writes back byte-identical


_NUMERIC_KEY = re.compile(r"[\s\ufeff]*[+-]?[0-9]")  # a superset of parseInt(k) !== NaN


def _has_byte_map(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_byte_map(v) for v in value)
    if isinstance(value, dict):
        if value and all(_NUMERIC_KEY.match(k) for k in value):
            return True
        return any(_has_byte_map(v) for v in value.values())
    return False


# --- js_json_loads: JSON.parse(text, BufferJSON.reviver) -------------------------------------


def test_reviver_matches_baileys() -> None:
    assert js_json_loads('{"type":"Buffer","data":"AQID"}') == b"\x01\x02\x03"
    assert js_json_loads('{"type":"Buffer","data":""}') == b""
    assert js_json_loads('{"type":"Buffer","data":"AQID","x":1}') == b"\x01\x02\x03"
    # Baileys' reviver leaves array data alone (its replacer would still write it as base64).
    assert js_json_loads('{"type":"Buffer","data":[1,2]}') == {"type": "Buffer", "data": [1, 2]}
    # A JSON.stringify-ed Uint8Array: keys parseInt-able, values numbers, in V8 key order.
    assert js_json_loads('{"1":2,"0":1}') == b"\x01\x02"
    assert js_json_loads('{"0":300,"1":-1,"2":1.9,"3":-1.5}') == b"\x2c\xff\x01\xff"
    assert js_json_loads('{" 7":1,"+5":2,"1e3":3,"0x10":4}') == b"\x01\x02\x03\x04"
    assert js_json_loads('{"1a":3,"0":4}') == b"\x04\x03"
    assert js_json_loads('{"0":"x"}') == {"0": "x"}
    assert js_json_loads('{"0":true}') == {"0": True}
    assert js_json_loads('{"Infinity":1,"-":2}') == {"Infinity": 1, "-": 2}
    assert js_json_loads("{}") == {} and js_json_loads("[1,2]") == [1, 2]
    assert js_json_loads('{"0":{"0":1}}') == {"0": b"\x01"}  # bottom-up, as JSON.parse
    assert js_json_loads('{"a":1,"a":2}') == {"a": 2}


@pytest.mark.parametrize(
    ("text", "hex_bytes"),
    [  # what Buffer.from(text, 'base64') gives in Node 20
        ("", ""),
        ("A", ""),
        ("AA", "00"),
        ("AAA", "0000"),
        ("AAAAA", "000000"),
        ("QQ=", "41"),
        ("QQ==QQ==", "41"),
        ("QQ=x", "41"),
        ("Q Q==", "41"),
        ("QUJD\nREVG", "414243444546"),
        ("QU*JD", "414243"),
        ("-_-_", "fbffbf"),
        ("=QQ", ""),
        ("QR==", "41"),
        ("QUI=QUI=", "4142"),
        ("Q=Q=", ""),
        ("Q===", ""),
        ("   ", ""),
    ],
)
def test_buffer_base64_is_decoded_as_node_does(text: str, hex_bytes: str) -> None:
    assert node_b64decode(text) == bytes.fromhex(hex_bytes)
    assert js_json_loads(json.dumps({"type": "Buffer", "data": text})) == bytes.fromhex(hex_bytes)


def test_loads_numbers_and_rejections_like_json_parse() -> None:
    assert js_json_loads("1e400") == math.inf  # Infinity, printed as null
    assert js_json_dumps(js_json_loads("1" * 500)) == "null"
    big = js_json_loads("9007199254740993")  # the double JSON.parse gives, as an int
    assert big == 9007199254740992 and isinstance(big, int)
    assert js_json_dumps(js_json_loads("9007199254740993")) == "9007199254740992"
    for bad in ("NaN", "Infinity", "-Infinity", "[1,]", "01", "'a'", "\ufeff{}", "{} x"):
        with pytest.raises(ValueError):
            js_json_loads(bad)
    with pytest.raises(ValueError):
        js_json_loads("[" * 100_000 + "]" * 100_000)


# --- folders ---------------------------------------------------------------------------------


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    creds, keys = _creds(), _keys()
    folder = tmp_path / "auth"
    write_folder(folder, creds, keys)
    state = read_folder(folder)
    assert state.creds.to_json() == creds.to_json()
    assert state.creds_json == creds.to_json()
    assert state.keys == keys
    assert state.skipped == []
    names = set(os.listdir(folder))
    assert "creds.json" in names
    assert "sender-key-120363025246125486@g.us--15551234567--0.json" in names
    assert "app-state-sync-key-AAAAAB__x+Q==.json" in names
    assert "lid-mapping-123456789012345_reverse.json" in names
    assert len(names) == 1 + sum(len(v) for v in keys.values())


def test_files_hold_exactly_what_baileys_writes(tmp_path: Path) -> None:
    write_folder(tmp_path, _creds(), _keys())
    pre_key = (tmp_path / "pre-key-1.json").read_bytes()
    private, public = b64encode(b"\x01" * 32), b64encode(b"\x02" * 32)
    assert (
        pre_key
        == (
            f'{{"private":{{"type":"Buffer","data":"{private}"}},'
            f'"public":{{"type":"Buffer","data":"{public}"}}}}'
        ).encode()
    )
    assert (tmp_path / "lid-mapping-15551234567.json").read_bytes() == b'"123456789012345"'
    assert (tmp_path / "device-list-15551234567.json").read_bytes() == b'["0","12"]'
    creds = (tmp_path / "creds.json").read_bytes()
    assert b" " not in creds.split(b'"name"')[0]  # compact
    assert "Zoë 🙂".encode() in creds  # raw UTF-8, not \u escapes
    assert b'"account":{"details":"' in creds  # protobuf JSON: plain base64


def test_rewriting_what_was_read_is_byte_identical(tmp_path: Path) -> None:
    creds_json = _creds().to_json()
    creds_json = {"zeta": [0.5, 1e21, "\u2028\ud800"], **creds_json, "7": {"1": "x"}}
    first, second = tmp_path / "a", tmp_path / "b"
    write_folder(first, creds_json, _keys())
    state = read_folder(first)
    write_folder(second, state.creds_json, state.keys)
    assert _files(first) == _files(second)


def test_unknown_and_odd_entries_are_reported_not_lost(tmp_path: Path) -> None:
    write_folder(tmp_path, _creds(), {"pre-key": {"1": {"public": b"a"}}})
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "unknown-1.json").write_text("{}")
    (tmp_path / "pre-key-2.json").write_text("null")
    (tmp_path / "session-1.0.json").mkdir()
    (tmp_path / ".wahttp-0123.tmp").write_text("{")
    state = read_folder(tmp_path)
    assert state.keys == {"pre-key": {"1": {"public": b"a"}}}
    skipped = {s.name: s.reason for s in state.skipped}
    assert set(skipped) == {
        "notes.txt",
        "unknown-1.json",
        "pre-key-2.json",
        "session-1.0.json",
        ".wahttp-0123.tmp",
    }
    assert "null" in skipped["pre-key-2.json"]
    assert SkippedFile("session-1.0.json", "not a regular file") in state.skipped


def test_missing_folder_and_creds_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AuthFolderError, match="does not exist"):
        read_folder(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(AuthFolderError, match="not a directory"):
        read_folder(tmp_path / "file")
    (tmp_path / "pre-key-1.json").write_text("{}")
    with pytest.raises(AuthFolderError, match=r"creds\.json: missing") as info:
        read_folder(tmp_path)
    assert isinstance(info.value, StoreError)


def test_malformed_files_name_the_file_and_hide_the_content(tmp_path: Path) -> None:
    write_folder(tmp_path, _creds(), {})
    (tmp_path / "session-1.0.json").write_text('{"secret-key-material": ')
    with pytest.raises(AuthFolderError, match=r"session-1\.0\.json: malformed JSON") as info:
        read_folder(tmp_path)
    assert "secret" not in str(info.value) and info.value.__cause__ is None
    (tmp_path / "session-1.0.json").unlink()
    (tmp_path / "creds.json").write_text("[]")
    with pytest.raises(AuthFolderError, match="not a JSON object"):
        read_folder(tmp_path)
    data = _creds().to_json()
    del data["noiseKey"]
    write_folder(tmp_path, data, {})
    with pytest.raises(AuthFolderError, match="noiseKey"):
        read_folder(tmp_path)


def test_invalid_utf8_is_replaced_like_node(tmp_path: Path) -> None:
    write_folder(tmp_path, _creds(), {})
    (tmp_path / "lid-mapping-1.json").write_bytes(b'"a\xffb"')
    assert read_folder(tmp_path).keys == {"lid-mapping": {"1": "a\ufffdb"}}


def test_symlinks_are_refused(tmp_path: Path) -> None:
    folder, outside = tmp_path / "auth", tmp_path / "outside.json"
    write_folder(folder, _creds(), {})
    outside.write_text('"secret"')
    (folder / "session-1.0.json").symlink_to(outside)
    with pytest.raises(AuthFolderError, match="symlink"):
        read_folder(folder)
    (folder / "session-1.0.json").unlink()
    (folder / "creds.json").rename(tmp_path / "creds.json")
    (folder / "creds.json").symlink_to(tmp_path / "creds.json")
    with pytest.raises(AuthFolderError, match="symlink"):
        read_folder(folder)
    # A symlinked folder path itself is the user's choice and is fine.
    (folder / "creds.json").unlink()
    write_folder(folder, _creds(), {})
    (tmp_path / "link").symlink_to(folder)
    assert read_folder(tmp_path / "link").keys == {}


def test_writing_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    folder, outside = tmp_path / "auth", tmp_path / "outside.json"
    folder.mkdir()
    outside.write_text("untouched")
    (folder / "pre-key-1.json").symlink_to(outside)
    write_folder(folder, _creds(), {"pre-key": {"1": {"public": b"x"}}})
    assert outside.read_text() == "untouched"
    assert not (folder / "pre-key-1.json").is_symlink()


def test_oversized_files_are_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, _creds(), {})
    with (tmp_path / "session-1.0.json").open("wb") as f:
        f.truncate(MAX_FILE_SIZE + 1)
    with pytest.raises(AuthFolderError, match=r"session-1\.0\.json: larger than"):
        read_folder(tmp_path)


def test_permissions(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        folder = tmp_path / "deep" / "auth"
        (tmp_path / "deep").mkdir()
        (tmp_path / "deep" / "auth").mkdir(mode=0o755)
        (folder / "pre-key-1.json").write_text("{}")
        os.chmod(folder / "pre-key-1.json", 0o644)
        write_folder(folder, _creds(), {"pre-key": {"1": {"public": b"x"}}})
        fresh = tmp_path / "fresh" / "auth"
        write_folder(fresh, _creds(), {"session": {"1.0": {"a": 1}}})
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    for path in (*folder.iterdir(), *fresh.iterdir()):
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600, path.name


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_folder(tmp_path, _creds(), {"pre-key": {"1": {"public": b"old"}}})
    before = _files(tmp_path)

    def broken_replace(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(AuthFolderError, match=r"pre-key-1\.json: cannot write"):
        write_folder(tmp_path, _creds(), {"pre-key": {"1": {"public": b"new"}}})
    assert _files(tmp_path) == before  # old content whole, temp file removed


def test_invalid_keys_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    bad: list[tuple[str, str]] = [
        ("no-such-category", "1"),
        ("session", "15551234567:1@s.whatsapp.net"),  # not in file-name form
        ("session", "a/b"),
        ("session", ""),
        ("sender-key", "memory-x"),  # would read back as sender-key-memory
        ("session", "x" * 250),
        ("session", "\ud800"),
        ("session", "a\x00b"),
    ]
    for category, key_id in bad:
        with pytest.raises(ValueError):
            key_file_name(category, key_id)
        with pytest.raises(ValueError):
            write_folder(tmp_path, _creds(), {"pre-key": {"1": {}}, category: {key_id: 1}})
    with pytest.raises(TypeError):
        write_folder(tmp_path, _creds(), {"pre-key": {"1": {1, 2}}})
    assert list(tmp_path.iterdir()) == []


def test_none_deletes_and_prune_removes_stale_auth_files(tmp_path: Path) -> None:
    write_folder(tmp_path, _creds(), {"pre-key": {"1": {"a": 1}, "2": {"a": 2}, "3": {"a": 3}}})
    (tmp_path / "notes.txt").write_text("keep me")
    write_folder(tmp_path, _creds(), {"pre-key": {"1": None}})
    assert {"pre-key-2.json", "pre-key-3.json"} <= set(os.listdir(tmp_path))
    assert not (tmp_path / "pre-key-1.json").exists()
    write_folder(tmp_path, _creds(), {"pre-key": {"3": {"a": 3}}}, prune=True)
    assert sorted(os.listdir(tmp_path)) == ["creds.json", "notes.txt", "pre-key-3.json"]


# --- stores -----------------------------------------------------------------------------------


EnumerableStore = MemoryAuthStore


class RecordingStore(EnumerableStore):
    def __init__(self) -> None:
        super().__init__()
        self.set_calls = 0

    async def set(self, changes: dict[str, dict[str, KeyValue | None]]) -> None:
        self.set_calls += 1
        await super().set(changes)


async def test_mirror_keeps_the_folder_in_step(tmp_path: Path) -> None:
    inner = EnumerableStore()
    mirror = FolderMirror(inner, tmp_path / "auth")
    creds = _creds()
    await mirror.save_creds(creds)
    await mirror.set({"pre-key": {"1": {"public": b"a"}, "2": {"public": b"b"}}})
    await mirror.set({"pre-key": {"1": None}, "session": {"1.0": {"v": 1}}})
    state = read_folder(tmp_path / "auth")
    assert state.creds.to_json() == creds.to_json()
    assert state.keys == await inner.all_keys() == await mirror.all_keys()
    assert await mirror.get("pre-key", ["1", "2"]) == {"2": {"public": b"b"}}
    loaded = await mirror.load_creds()
    assert loaded is not None and loaded.to_json() == creds.to_json()
    (tmp_path / "auth" / "notes.txt").write_text("keep")
    await mirror.clear()
    assert os.listdir(tmp_path / "auth") == ["notes.txt"]
    assert await inner.load_creds() is None


async def test_mirror_stores_baileys_ids_under_their_file_names(tmp_path: Path) -> None:
    inner = MemoryAuthStore()
    mirror = FolderMirror(inner, tmp_path)
    await mirror.set(
        {"sender-key": {"123-456@g.us::789::1": {"v": 2}}, "session": {"1.0": {"v": 1}}}
    )
    assert (tmp_path / "sender-key-123-456@g.us--789--1.json").exists()
    assert await mirror.get("sender-key", ["123-456@g.us::789::1"]) == {
        "123-456@g.us::789::1": {"v": 2}
    }
    assert await inner.get("sender-key", ["123-456@g.us--789--1"]) == {
        "123-456@g.us--789--1": {"v": 2}
    }


async def test_mirror_refuses_bad_keys_before_the_inner_store(tmp_path: Path) -> None:
    inner = MemoryAuthStore()
    mirror = FolderMirror(inner, tmp_path)
    with pytest.raises(ValueError):
        await mirror.set({"session": {"1.0": {"v": 1}}, "no-such-category": {"a": {"v": 2}}})
    assert inner.count("session") == 0


async def test_mirror_writes_land_in_store_order(tmp_path: Path) -> None:
    inner = MemoryAuthStore()
    mirror = FolderMirror(inner, tmp_path)
    await asyncio.gather(*(mirror.set({"session": {"1.0": {"n": n}}}) for n in range(30)))
    stored = await inner.get("session", ["1.0"])
    assert js_json_loads((tmp_path / "session-1.0.json").read_text()) == stored["1.0"]


async def test_import_folder_fills_a_store_in_one_set(tmp_path: Path) -> None:
    creds, keys = _creds(), _keys()
    write_folder(tmp_path, creds, keys)
    (tmp_path / "notes.txt").write_text("x")
    store = RecordingStore()
    state = await import_folder(tmp_path, store)
    assert store.set_calls == 1
    assert state.skipped == [SkippedFile("notes.txt", "not a Baileys auth file")]
    loaded = await store.load_creds()
    assert loaded is not None and loaded.to_json() == creds.to_json()
    assert await store.all_keys() == keys
    assert await store.get("sender-key", [SENDER_KEY_ID]) == {
        SENDER_KEY_ID: keys["sender-key"][SENDER_KEY_ID]
    }


async def test_export_folder(tmp_path: Path) -> None:
    creds, keys = _creds(), _keys()
    store = EnumerableStore(creds)
    await store.set(dict(keys))
    await export_folder(store, tmp_path / "all")
    state = read_folder(tmp_path / "all")
    assert state.keys == keys and state.creds.to_json() == creds.to_json()

    await export_folder(store, tmp_path / "some", categories=["pre-key", "session"])
    assert set(read_folder(tmp_path / "some").keys) == {"pre-key", "session"}

    with pytest.raises(AuthFolderError, match="already holds"):
        await export_folder(store, tmp_path / "some")
    await store.set({"session": {"15551234567.0": None}})
    await export_folder(store, tmp_path / "some", ["pre-key", "session"], replace=True)
    assert read_folder(tmp_path / "some").keys == {"pre-key": keys["pre-key"]}

    await export_folder(MemoryAuthStore(creds), tmp_path / "x")  # every store enumerates now
    assert read_folder(tmp_path / "x").keys == {}
    with pytest.raises(AuthFolderError, match="no creds"):
        await export_folder(EnumerableStore(), tmp_path / "y")
