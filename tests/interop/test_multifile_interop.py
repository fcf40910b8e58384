"""Acceptance test: our auth-folder codec against Baileys' useMultiFileAuthState and BufferJSON.

(a) Baileys writes a folder; we read every value and our rewrite is byte-identical.
(b) We write a folder; Baileys loads it, returns what we wrote and its own rewrite matches ours.
(c) js_json_dumps/js_json_loads print what JSON.stringify/JSON.parse (+ BufferJSON) print.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from wahttp.wa.auth import Creds, Me, SignalIdentity, new_creds
from wahttp.wa.auth.bufferjson import b64decode, b64encode, js_json_dumps, js_json_loads
from wahttp.wa.auth.filenames import file_key_id
from wahttp.wa.auth.multifile import read_folder, write_folder
from wahttp.wa.proto import adv_pb2

pytestmark = pytest.mark.interop

INTEROP_DIR = Path(__file__).resolve().parent
ORACLE = "multifile_oracle.mjs"


@pytest.fixture(scope="module", autouse=True)
def _need_node() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (INTEROP_DIR / "node_modules" / "baileys").is_dir():
        pytest.skip("run `npm ci` in tests/interop first")


def _oracle(*args: str, stdin: str = "") -> str:
    done = subprocess.run(
        ["node", ORACLE, *args],
        cwd=INTEROP_DIR,
        input=stdin.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# --- (a) Baileys writes, we read and rewrite ------------------------------------------------


def test_we_read_a_baileys_folder_and_rewrite_it_byte_for_byte(tmp_path: Path) -> None:
    theirs = tmp_path / "baileys"
    written = js_json_loads(_oracle("write", str(theirs)))
    state = read_folder(theirs)
    assert state.skipped == []

    # Every value reads back as Baileys set it (ids in file-name form).
    assert state.creds_json == written["creds"]
    expected_keys = {
        category: {file_key_id(key_id): value for key_id, value in values.items()}
        for category, values in written["keys"].items()
    }
    assert state.keys == expected_keys
    assert "120363025246125486@g.us--15551234567--0" in state.keys["sender-key"]
    assert "AAAAAB__x" in state.keys["app-state-sync-key"]
    assert isinstance(state.keys["pre-key"]["1"]["private"], bytes)
    assert isinstance(state.keys["identity-key"]["123456789012345_1.12"], bytes)  # Uint8Array
    assert isinstance(state.keys["session"]["15551234567.0"]["_sessions"], dict)
    assert state.keys["device-list"]["15551234567"] == ["0", "12"]

    # The creds model holds the same data.
    creds = state.creds
    assert creds.me is not None and creds.me.lid == "123456789012345:12@lid"
    assert creds.account is not None and len(creds.account.details) == 60
    assert creds.routing_info is not None and len(creds.routing_info) == 24
    assert creds.signal_identities[0].key[0] == 5
    assert creds.registered and creds.platform == "smba"
    assert creds.to_json() == state.creds_json  # nothing lost (key order aside)

    # Our writer reproduces every file exactly.
    ours = tmp_path / "ours"
    write_folder(ours, state.creds_json, state.keys)
    assert _files(ours) == _files(theirs)

    # Through the Creds model the content survives (creds.json key order may differ).
    via_model = tmp_path / "model"
    write_folder(via_model, state.creds, state.keys)
    assert read_folder(via_model).creds_json == state.creds_json
    assert {k: v for k, v in _files(via_model).items() if k != "creds.json"} == {
        k: v for k, v in _files(theirs).items() if k != "creds.json"
    }


# --- (b) we write, Baileys reads ------------------------------------------------------------


def _python_state() -> tuple[Creds, dict[str, dict[str, Any]], dict[str, str]]:
    """Creds and keys (file-form ids) plus, per file-form id, the id Baileys asks for."""
    creds = new_creds()
    creds.me = Me("15551234567:7@s.whatsapp.net", "123456789012345:7@lid", "Zoë 🙂 \u2028\x01")
    creds.account = adv_pb2.ADVSignedDeviceIdentity(
        details=b"d" * 50,
        accountSignatureKey=b"k" * 32,
        accountSignature=b"s" * 64,
        deviceSignature=b"x" * 64,
    )
    creds.signal_identities = [SignalIdentity("123456789012345:7@lid", 0, b"\x05" + b"i" * 32)]
    creds.routing_info = b"\x08\x01\x08\x05"
    creds.platform = "smba"
    creds.registered = True
    creds.extra["myAppStateKeyId"] = "AAAAAB/x+Q=="
    creds.extra["lastAccountSyncTimestamp"] = 1700000000
    sender = "120363025246125486@g.us::15551234567::0"
    app_key = "AAAAAB/x+Q=="
    real_ids = {file_key_id(sender): sender, file_key_id(app_key): app_key}
    keys: dict[str, dict[str, Any]] = {
        "pre-key": {"1": {"private": b"\x01" * 32, "public": b"\x02" * 32}},
        "session": {
            "15551234567.0": {
                "_sessions": {b64encode(b"\x05" * 33): {"registrationId": 42, "used": 1.5}},
                "version": "v1",
            }
        },
        "sender-key": {file_key_id(sender): b'[{"senderKeyId":7}]'},
        "sender-key-memory": {"120363025246125486@g.us": {"15551234567:7@s.whatsapp.net": True}},
        "app-state-sync-key": {
            file_key_id(app_key): {
                "keyData": b64encode(b"\x07" * 32),
                "fingerprint": {"rawId": 1, "currentIndex": 2, "deviceIndexes": [0, 7]},
                "timestamp": "1700000000123",
            }
        },
        "app-state-sync-version": {
            "regular_high": {"version": 3, "hash": bytes(128), "indexValueMap": {}}
        },
        "lid-mapping": {"15551234567": "123456789012345", "123456789012345_reverse": "15551234567"},
        "device-list": {"15551234567": ["0", "7"]},
        "tctoken": {"15551234567@s.whatsapp.net": {"token": b"t" * 20, "timestamp": "1700000000"}},
        "identity-key": {"15551234567.0": b"\x05" + b"p" * 32},
    }
    return creds, keys, real_ids


def test_baileys_reads_a_folder_we_wrote(tmp_path: Path) -> None:
    creds, keys, real_ids = _python_state()
    ours, copy = tmp_path / "ours", tmp_path / "baileys-copy"
    write_folder(ours, creds, keys)
    wanted = {c: [real_ids.get(i, i) for i in values] for c, values in keys.items()}
    got = js_json_loads(_oracle("read", str(ours), str(copy), stdin=json.dumps(wanted)))

    assert got["creds"] == creds.to_json()
    assert Creds.from_json(got["creds"]).to_json() == creds.to_json()
    for category, values in keys.items():
        for key_id, value in values.items():
            assert got["keys"][category][real_ids.get(key_id, key_id)] == value, category
    # What Baileys writes back of what it read is byte-identical to our files.
    assert _files(copy) == _files(ours)


# --- (c) the JSON codec against V8 -----------------------------------------------------------

_FIXED_TEXTS = [
    '{"b":1,"2":2,"1":3,"a":{"10":"x","9":"y","-1":"z"}}',
    '{"01":"a","1":"b","4294967295":"c","4294967294":"d","0":"e"}',
    "1e400",
    "-1e400",
    "-0",
    "-0.0",
    "1.0",
    "1E2",
    "123456789012345678901234567890",
    "9007199254740993",
    "-9007199254740993",
    "0.1",
    "1e21",
    "1e20",
    "1e-7",
    "0.000001",
    "123e-20",
    "5e-324",
    "1.7976931348623157e308",
    "2.5e-5",
    "1" * 400,
    '"\\u2028\\u2029\\u007f\\u0000\\u001f\\/\\b\\f\\n\\r\\t"',
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\ud83d\\ude00 raw 🙂 é 漢"',
    '{"\\ud800":1,"\\u0000":[]}',
    '{"0":1,"1":256,"2":-1,"3":1.9,"4":-1.5,"5":1e400}',
    '{" 1":5}',
    '{"\\u00a0\\ufeff2":5}',
    '{"1a":3,"0":4}',
    '{"+5":1,"-3":2}',
    '{"0x10":7}',
    '{"Infinity":1}',
    '{"4294967295":1,"4294967294":2,"1":3}',
    '{"0":"x"}',
    '{"0":true}',
    '{"0":{"0":1}}',
    '[{"0":1},{}]',
    '{"type":"Buffer","data":[1,2,300]}',
    '{"type":"Buffer","data":"AQID"}',
    '{"type":"Buffer","data":""}',
    '{"type":"Buffer","data":"AQID","x":1}',
    '{"type":"Buffer","data":[]}',
    '{"type":"Buffer","data":{"0":1,"1":2}}',
    '{"a":{"type":"Buffer","data":"/w=="},"b":[{"type":"Buffer","data":"_-8"}]}',
    '{"type":"Buffer"}',
    '{"type":"Buffer","data":5}',
    '{"type":"Other","data":"AQID"}',
    '{"__proto__":1,"constructor":2}',
    '{"a":1,"a":2,"b":3}',
    "[" * 50 + "]" * 50,
    "NaN",
    "[1,]",
    "",
]


def _random_string(rng: random.Random) -> str:
    pool = 'aZ09 "\\/\b\f\n\r\t\x00\x1f\x7f\u00e9\u2028\u2029\ufeff\U0001f642\ud800\udc00\udbff'
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 8)))


def _random_double(rng: random.Random) -> float:
    while True:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(value):
            return float(value)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([rng.randint(-1000, 1000), rng.randint(-(2**70), 2**70), 2**53 + 1])
    if kind == 2:
        return _random_double(rng)
    if kind == 3:
        return rng.choice([0.1 * rng.randint(1, 99), rng.random() * 10 ** rng.randint(-12, 25)])
    if kind in (4, 5, 6):
        return _random_string(rng)
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == 8:  # a Uint8Array-like object, sometimes with a non-number inside
        items: dict[str, Any] = {
            str(rng.randint(0, 40)): rng.randint(-300, 300) for _ in range(rng.randint(1, 4))
        }
        if rng.random() < 0.3:
            items[rng.choice(["x", "1", " 2"])] = rng.choice(["s", 1.5, None])
        return items
    keys = [rng.choice(["a", "b", "0", "7", "10", "01", "-1", "é", _random_string(rng)])]
    keys += [_random_string(rng) for _ in range(rng.randint(0, 3))]
    return {k: _random_value(rng, depth + 1) for k in keys}


def _random_texts(count: int) -> list[str]:
    rng = random.Random(0xB0F_F3E)
    texts = []
    for _ in range(count):
        value = _random_value(rng)
        if rng.random() < 0.2:
            value = {"type": "Buffer", "data": b64encode(rng.randbytes(rng.randint(0, 9)))}
        elif rng.random() < 0.1:  # base64 as nobody writes it: Buffer.from never throws
            junk = "".join(rng.choices("QUJD+/-_= \n*é", k=rng.randint(0, 12)))
            value = {"type": "Buffer", "data": junk}
        # ensure_ascii keeps lone surrogates as \\udxxx escapes, which JSON.parse accepts.
        texts.append(json.dumps(value, ensure_ascii=rng.random() < 0.5 or _has_lone(value)))
    return texts


def _has_lone(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _ours(text: str) -> tuple[str | None, str | None]:
    try:
        revived: str | None = js_json_dumps(js_json_loads(text))
    except (ValueError, TypeError):
        revived = None
    try:
        plain = json.loads(text, parse_constant=_no_constant, parse_int=_js_int)
        plain_out: str | None = js_json_dumps(plain) if "Buffer" not in text else None
    except (ValueError, TypeError):
        plain_out = None
    return revived, plain_out


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _js_int(text: str) -> int | float:
    if len(text) <= 15:
        return int(text)
    number = float(text)  # a JS number is a double
    return int(number) if math.isfinite(number) else number


def test_json_codec_prints_what_v8_prints() -> None:
    texts = _FIXED_TEXTS + _random_texts(3000)
    node = json.loads(_oracle("codec", stdin=json.dumps(texts)))
    assert len(node) == len(texts)
    mismatches = []
    for text, (node_revived, node_plain) in zip(texts, node, strict=True):
        revived, plain = _ours(text)
        if revived != node_revived:
            mismatches.append(("BufferJSON", text, revived, node_revived))
        if "Buffer" not in text and plain != node_plain:
            mismatches.append(("plain", text, plain, node_plain))
    assert mismatches == []


def test_buffers_written_by_node_decode_the_same() -> None:
    rng = random.Random(7)
    blobs = [rng.randbytes(n) for n in range(0, 70)]
    texts = [json.dumps({"type": "Buffer", "data": list(b)}) for b in blobs]
    node = json.loads(_oracle("codec", stdin=json.dumps(texts)))
    for blob, (revived, _) in zip(blobs, node, strict=True):
        assert revived == js_json_dumps(blob)
        assert b64decode(json.loads(revived)["data"]) == blob


def test_malformed_utf8_reads_as_node_reads_it(tmp_path: Path) -> None:
    rng = random.Random(8)
    pool = [0x41, 0x80, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xA0, 0xF0, 0xF4, 0x90, 0x8F, 0xFF, 0xE2]
    blobs = [b'"' + bytes(rng.choices(pool, k=rng.randint(1, 8))) + b'"' for _ in range(300)]
    blobs += [b'"\xed\xa0\x80"', b'"\xf0\x9f\x98"', b'"\xc0\xaf"', b'"\xf5\x80\x80\x80"']
    write_folder(tmp_path, new_creds(), {})
    for i, blob in enumerate(blobs):
        (tmp_path / f"lid-mapping-{i}.json").write_bytes(blob)
    node = js_json_loads(_oracle("utf8", stdin=json.dumps([b.hex() for b in blobs])))
    ours = read_folder(tmp_path).keys["lid-mapping"]
    assert [ours[str(i)] for i in range(len(blobs))] == node
