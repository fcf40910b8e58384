"""Acceptance test: our binary node codec against Baileys' encodeBinaryNode/decodeBinaryNode.

Needs Node.js and `npm ci` in tests/interop; CI always provides both.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import string
import subprocess
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from wahttp.wa.binary import Node, decode_node, encode_node
from wahttp.wa.binary.tokens import DOUBLE_BYTE_TOKENS, SINGLE_BYTE_TOKENS
from wahttp.wa.errors import DecodeError

pytestmark = pytest.mark.interop

INTEROP_DIR = Path(__file__).resolve().parent
SEED = 0x5EED_C0DEC
JsonNode = dict[str, Any]

# Strings Baileys mishandles: its token map is a plain object, so prototype members such as
# "constructor" are "found" and written as byte 0. Never generated here (see test_binary.py).
_JS_PROTO_NAMES = frozenset(
    {
        "constructor",
        "__proto__",
        "toString",
        "valueOf",
        "hasOwnProperty",
        "isPrototypeOf",
        "propertyIsEnumerable",
        "toLocaleString",
        "__defineGetter__",
        "__defineSetter__",
        "__lookupGetter__",
        "__lookupSetter__",
    }
)
_SERVERS = ("s.whatsapp.net", "g.us", "lid", "broadcast", "newsletter", "c.us", "call", "bot")
_AD_SERVERS = ("s.whatsapp.net", "lid", "hosted", "hosted.lid")
_WORD_CHARS = string.ascii_lowercase + string.ascii_uppercase + "-_. :/+=!"
_UNICODE_SAMPLES = "aé漢字🙂\u0000\n\t\u00a0€𝄞ßЖ"


# --- corpus -----------------------------------------------------------------------------


def _word(rng: random.Random, lo: int = 1, hi: int = 12) -> str:
    """A raw (non-token, non-packed, '@'-free) ASCII string."""
    while True:
        text = "".join(rng.choice(_WORD_CHARS) for _ in range(rng.randint(lo, hi)))
        if text not in SINGLE_BYTE_TOKENS and not text.isdigit() and text not in _JS_PROTO_NAMES:
            return text


def _packed(rng: random.Random, alphabet: str, length: int | None = None) -> str:
    size = length if length is not None else rng.randint(1, 127)
    return "".join(rng.choice(alphabet) for _ in range(size))


def _jid_user(rng: random.Random) -> str:
    """A canonical user part: no ':' '_' '@'."""
    kind = rng.randrange(5)
    if kind == 0:
        return ""
    if kind == 1:
        return _packed(rng, string.digits, rng.randint(5, 20))
    if kind == 2:
        return rng.choice(DOUBLE_BYTE_TOKENS[rng.randrange(4)]).replace(":", "").replace("_", "")
    if kind == 3:
        return f"{rng.randint(10**9, 10**12)}-{rng.randint(10**9, 10**10)}"
    return _word(rng).replace(":", "").replace("_", "")


def _jid(rng: random.Random) -> str:
    if rng.random() < 0.5:
        server = rng.choice(_AD_SERVERS)
        return f"{_jid_user(rng)}:{rng.randint(1, 255)}@{server}"
    server = rng.choice((*_SERVERS, _word(rng, 1, 5)))
    return f"{_jid_user(rng)}@{server}"


def _string(rng: random.Random) -> str:
    """A string that Baileys decodes back unchanged (a "canonical" one)."""
    kind = rng.randrange(11)
    if kind == 0:
        return rng.choice(SINGLE_BYTE_TOKENS[1:])
    if kind == 1:
        return rng.choice(DOUBLE_BYTE_TOKENS[rng.randrange(4)])
    if kind == 2:
        return _packed(rng, "0123456789-.")
    if kind == 3:
        return _packed(rng, "0123456789ABCDEF")
    if kind in (4, 5):
        return _jid(rng)
    if kind == 6:
        return "".join(rng.choice(_UNICODE_SAMPLES) for _ in range(rng.randint(1, 20)))
    if kind == 7:
        return _word(rng, rng.choice((255, 256, 300)), 300)
    if kind == 8:
        return ""
    return _word(rng)


def _key(rng: random.Random) -> str:
    # JavaScript orders integer-like keys first, so keep keys non-numeric.
    while True:
        key = _string(rng)
        if not key.isdigit() and key not in _JS_PROTO_NAMES:
            return key


def _bytes(rng: random.Random) -> bytes:
    size = rng.choice((0, 1, 2, 5, 32, 100, 255, 256, 257, 1000))
    return rng.randbytes(size)


def _random_node(rng: random.Random, depth: int = 0) -> Node:
    attrs = {_key(rng): _string(rng) for _ in range(rng.choice((0, 0, 1, 2, 3, 5, 8)))}
    tag = ""
    while not tag:
        tag = _string(rng)
    roll = rng.random()
    content: list[Node] | bytes | str | None
    if roll < 0.25:
        content = None
    elif roll < 0.45:
        content = _bytes(rng)
    elif roll < 0.55:
        content = rng.choice(
            (
                rng.choice(SINGLE_BYTE_TOKENS[1:]),
                rng.choice(DOUBLE_BYTE_TOKENS[rng.randrange(4)]),
                _packed(rng, "0123456789-."),
                _packed(rng, "0123456789ABCDEF"),
                _jid(rng),
            )
        )
    elif depth >= 4:
        content = []
    else:
        content = [_random_node(rng, depth + 1) for _ in range(rng.choice((0, 1, 2, 3, 6)))]
    return Node(tag, attrs, content)


def _fixed_nodes(rng: random.Random) -> list[Node]:
    """Hand-picked nodes that pin every wire form and size boundary."""
    nodes = [
        Node(
            "iq",
            {"id": "1", "to": "@s.whatsapp.net", "type": "get", "xmlns": "w:p"},
            [Node("ping")],
        ),
        Node("message", {"to": "1234567890@s.whatsapp.net", "id": "3EB0ABCDEF0123456789"}),
        Node("receipt", {"from": "123456:7@s.whatsapp.net", "participant": "99:3@lid"}),
        Node("x", {"a": "5:2@hosted", "b": "5:99@hosted.lid", "c": ":1@s.whatsapp.net"}),
        Node("x", {"g": "120363000000000000@g.us", "s": "status@broadcast", "n": "1@newsletter"}),
        Node("x", {"j": "a@b@c", "k": "@lid", "l": "123-456@g.us", "m": "server@c.us"}),
        Node("x", {"odd": "12345", "even": "1234", "dash": "-1.5", "one": "9"}),
        Node("x", {"hodd": "ABCDE", "heven": "ABCD", "h1": "F", "mix": "12AB"}),
        Node("x", {"n127": "1" * 127, "n128": "1" * 128, "h127": "A" * 127, "h128": "A" * 128}),
        Node("x", {"lower": "abcdef", "lowerhex": "deadbeef0", "empty": ""}),
        Node("x", {"s255": "s" * 255, "s256": "s" * 256, "s70k": "u" * 70000}),
        Node("x", {"uni": "héllo wörld 🙂 漢字", "nul": "a\u0000b", "ws": " \t\n"}),
        Node("x", {}, []),
        Node("x", {}, b""),
        Node("x", {}, b"\x00" * 255),
        Node("x", {}, b"\x01" * 256),
        Node("x", {}, b"\x02" * ((1 << 20) - 1)),
        Node("x", {}, b"\x03" * (1 << 20)),
        Node("x", {}, [Node("c", {"i": str(i)}) for i in range(255)]),
        Node("x", {}, [Node("c") for _ in range(256)]),
        Node("x", {}, [Node("c") for _ in range(1000)]),
        Node("x", {f"k{i}": f"v{i}" for i in range(127)}),  # list size 255
        Node("x", {f"k{i}": f"v{i}" for i in range(127)}, b"z"),  # list size 256 -> LIST_16
        Node("x", {f"k{i}": f"v{i}" for i in range(300)}, []),
        Node("enc", {"v": "2", "type": "pkmsg"}, rng.randbytes(180)),
        Node("x", {}, "true"),
        Node("x", {}, "read-self"),
        Node("x", {}, "123"),
        Node("x", {}, "ABC"),
        Node("x", {}, "1@s.whatsapp.net"),
        Node("x", {}, "1:2@lid"),
        Node("1@s.whatsapp.net", {"5:3@lid": "w:gp2"}),
        Node("a", {}, [Node("b", {}, [Node("c", {}, [Node("d", {}, [Node("e", {}, b"deep")])])])]),
    ]
    for table in DOUBLE_BYTE_TOKENS:
        keys = [token for token in table if not token.isdigit()]
        nodes.append(Node(table[0], {keys[1]: table[255], keys[-1]: table[2]}, table[3]))
        nodes.append(Node("all", {key: table[i] for i, key in enumerate(keys)}))
    keys = [token for token in SINGLE_BYTE_TOKENS[1:] if not token.isdigit()]
    nodes.append(Node("all", {key: SINGLE_BYTE_TOKENS[-i - 1] for i, key in enumerate(keys)}))
    return nodes


def _jid_soup(rng: random.Random) -> str:
    """`user[_agent][:device]@server` with fields full of JavaScript number syntax."""

    def field() -> str:
        chars = "0123456789012345 .-+eExXbBoOIfinity\u00a0\u2028_:"
        return "".join(rng.choice(chars) for _ in range(rng.randint(0, 8)))

    agent = "_" + field() if rng.random() < 0.6 else ""
    device = ":" + field() if rng.random() < 0.8 else ""
    server = rng.choice(("lid", "s.whatsapp.net", "hosted", "hosted.lid", "g.us", "x", ""))
    return f"{rng.choice(('', '1', '12345', 'ab'))}{agent}{device}@{server}"


def _quirk_nodes(rng: random.Random) -> list[Node]:
    """Inputs Baileys normalises on the way through; bytes must still match exactly."""
    values = [
        "123_1:2@s.whatsapp.net",  # agent 1 on an AD_JID -> decodes as 123:2@lid
        "123_128:2@s.whatsapp.net",
        "123_1@s.whatsapp.net",  # agent dropped on a JID_PAIR
        "123:0@s.whatsapp.net",  # device 0 is an AD_JID that prints without device
        "123:2@g.us",  # AD_JID servers come from the domain type -> s.whatsapp.net
        "123_5:2@lid",
        "a:@b",
        "a:b@c",
        "a: 7@c",
        "a:\u00a07\u3000@c",
        "a:0x1f@c",
        "a:0b11@c",
        "a:0o17@c",
        "a:1e2@c",
        "a:-3@c",
        "a:1.9@c",
        "a:.5@c",
        "a:Infinity@c",
        "a:1_0@c",
        "a:300@c",
        "a:99999999999999999999999@c",
        "a:1:2@c",
        "a_0x10:1@c",
        "a_-5:1@c",
        "a_12abc:1@c",
        "a_ 7:1@c",
        "a_b_c:1@c",
        "a_99999999999999999999999:1@c",
        "1-123:4@interop",
        "123:4@msgr",
        "abc@",
        "@",
    ]
    values += [_jid_soup(rng) for _ in range(300)]
    nodes = [Node("q", {"v": value}) for value in values]
    nodes += [Node("q", {}, "hello"), Node("q", {}, ""), Node("q", {}, "héllo")]
    return nodes


@cache
def _corpus() -> tuple[list[tuple[Node, bool]], list[bytes]]:
    rng = random.Random(SEED)
    cases = [(node, True) for node in _fixed_nodes(rng)]
    cases += [(_random_node(rng), True) for _ in range(250)]
    cases += [(node, False) for node in _quirk_nodes(rng)]
    return cases, _raw_frames(rng, [node for node, _ in cases])


def _raw_frames(rng: random.Random, nodes: list[Node]) -> list[bytes]:
    """Compressed frames plus random and mutated bytes, for decoder agreement."""
    small = [encode_node(n) for n in nodes if len(encode_node(n)) < 4000]
    compressed = [b"\x02" + zlib.compress(body[1:]) for body in small[:20]]
    mutated = []
    for _ in range(500):
        frame = bytearray(rng.choice(small))
        for _ in range(rng.randint(1, 4)):
            if not frame:
                break
            pos = rng.randrange(len(frame))
            op = rng.randrange(3)
            if op == 0:
                frame[pos] = rng.randrange(256)
            elif op == 1:
                del frame[pos:]
            else:
                frame.insert(pos, rng.randrange(256))
        mutated.append(bytes(frame))
    mutated += [b"\x00" + rng.randbytes(rng.randint(0, 40)) for _ in range(200)]
    # BINARY_32 lengths >= 2^31 make Baileys read backwards (a signed shift); skip any 0xFE.
    return compressed + [frame for frame in mutated if 0xFE not in frame]


# --- running the oracle -------------------------------------------------------------------


def _to_json(node: Node) -> JsonNode:
    out: JsonNode = {"tag": node.tag, "attrs": [[k, v] for k, v in node.attrs.items()]}
    content = node.content
    if isinstance(content, list):
        out["content"] = [_to_json(child) for child in content]
    elif isinstance(content, bytes):
        out["content"] = {"bytes": base64.b64encode(content).decode()}
    elif isinstance(content, str):
        out["content"] = {"str": content}
    return out


def _from_json(data: JsonNode) -> Node:
    content = data.get("content")
    node = Node(data["tag"], {k: v for k, v in data["attrs"]})
    if isinstance(content, list):
        node.content = [_from_json(child) for child in content]
    elif isinstance(content, dict) and "bytes" in content:
        node.content = base64.b64decode(content["bytes"])
    elif isinstance(content, dict):
        node.content = content["str"]
    return node


def _ordered(node: Node) -> Any:
    """A comparable form that also checks attribute order."""
    content = node.content
    if isinstance(content, list):
        content = [_ordered(child) for child in content]
    return (node.tag, list(node.attrs.items()), type(content).__name__, content)


@cache
def _oracle() -> dict[str, Any]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (INTEROP_DIR / "node_modules" / "baileys").is_dir():
        pytest.skip("tests/interop/node_modules is missing (run npm ci in tests/interop)")
    cases, raw = _corpus()
    request = {
        "nodes": [
            {"node": _to_json(node), "ours": base64.b64encode(encode_node(node)).decode()}
            for node, _ in cases
        ],
        "raw": [base64.b64encode(frame).decode() for frame in raw],
    }
    proc = subprocess.run(
        ["node", "codec_oracle.js"],
        cwd=INTEROP_DIR,
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _our_decode(frame: bytes) -> Node | None:
    try:
        return decode_node(frame)
    except DecodeError:
        return None


# --- tests ------------------------------------------------------------------------------


def test_corpus_covers_every_wire_form() -> None:
    cases, _ = _corpus()
    assert len(cases) >= 200
    seen = bytearray()
    for node, _ in cases:
        seen += encode_node(node)
    for tag in (0, 236, 237, 238, 239, 247, 248, 249, 250, 251, 252, 253, 254, 255):
        assert tag in seen


def test_encoding_is_byte_identical_to_baileys() -> None:
    cases, _ = _corpus()
    results = _oracle()["nodes"]
    mismatches = []
    for (node, _), result in zip(cases, results, strict=True):
        assert result["encode_error"] is None, (node, result["encode_error"])
        if base64.b64decode(result["bytes"]) != encode_node(node):
            mismatches.append(node)
    assert not mismatches, mismatches[:5]


def test_baileys_decodes_our_bytes_to_the_original() -> None:
    cases, _ = _corpus()
    for (node, canonical), result in zip(cases, _oracle()["nodes"], strict=True):
        ours = _our_decode(encode_node(node))
        if result["decoded"] is None:
            assert ours is None, (node, result["decode_error"])
            continue
        theirs = _from_json(result["decoded"])
        assert ours is not None
        assert _ordered(theirs) == _ordered(ours), node
        if canonical:
            assert _ordered(theirs) == _ordered(node)


def test_we_decode_baileys_bytes_to_the_original() -> None:
    cases, _ = _corpus()
    for (node, canonical), result in zip(cases, _oracle()["nodes"], strict=True):
        if canonical:
            assert _ordered(decode_node(base64.b64decode(result["bytes"]))) == _ordered(node)


def test_decoders_agree_on_mutated_and_random_frames() -> None:
    _, raw = _corpus()
    results = _oracle()["raw"]
    assert len(raw) >= 500
    for frame, result in zip(raw, results, strict=True):
        ours = _our_decode(frame)
        if result["decoded"] is None:
            assert ours is None, (frame.hex(), result["error"], ours)
        else:
            assert ours is not None, (frame.hex(), result["decoded"])
            # Compare attributes as dicts: JavaScript reorders integer-like keys.
            assert _from_json(result["decoded"]) == ours, frame.hex()
