"""Hot paths, wahttp vs Baileys in the same run: node encode/decode, Noise frame
encrypt/decrypt, Signal encrypt/decrypt per message. Writes bench/results/hotpaths.json.

Run: .venv/bin/python bench/hotpaths.py [iterations]   (needs `npm ci` in tests/interop)
Both sides warm up, then time the same number of operations on the same workload; results
are reported as operations per second and as the ratio wahttp / Baileys (> 1: we are faster).
The codec runs four workloads (see workloads(): "node_encode"/"node_decode" is the message
stanza, then a receipt, a 16-device fan-out and a 100-user usync result); the run stops if
the two encoders do not produce identical bytes, and codec timings are medians of 5 rounds.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

from wahttp import __version__
from wahttp.wa.binary import Node, decode_node, encode_node
from wahttp.wa.crypto import KeyPair, sign, with_key_type
from wahttp.wa.noise import TransportCipher
from wahttp.wa.signal import (
    PreKeyBundle,
    SessionRecord,
    build_session,
    decrypt_message,
    decrypt_prekey_message,
    encrypt,
)

HERE = Path(__file__).resolve().parent


def timed(fn: Callable[[int], object], n: int, warm: int = 0) -> float:
    for i in range(warm):
        fn(i)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - start


def _to(jid: str, fill: int) -> Node:
    enc = Node("enc", {"v": "2", "type": "msg"}, bytes([fill]) * 180)
    return Node("to", {"jid": jid}, [enc])


def _message_attrs() -> dict[str, str]:
    return {
        "id": "3EB0C431C26A1916E0B4",
        "to": "15551234567@s.whatsapp.net",
        "type": "text",
        "t": "1700000000",
    }


def _usync_user(i: int) -> Node:
    devices = [Node("device", {"id": "0"}), Node("device", {"id": "1", "key-index": "3"})]
    return Node(
        "user",
        {"jid": f"1555{i:07d}@s.whatsapp.net"},
        [
            Node("devices", {}, [Node("device-list", {}, devices)]),
            Node("lid", {"val": f"{90000000000000 + i}@lid"}),
        ],
    )


def workloads() -> dict[str, Node]:
    """The codec workloads; bench/hotpaths.mjs builds the same nodes (checked by sha256)."""
    devices = [_to("15551234567:3@s.whatsapp.net", 7), _to("15557654321:1@s.whatsapp.net", 9)]
    fanout = [_to(f"1555{i:07d}:{i % 5 + 1}@s.whatsapp.net", i) for i in range(16)]
    usync = Node(
        "usync",
        {"sid": "mq3o1a5f0", "index": "0", "last": "true", "mode": "query", "context": "message"},
        [Node("list", {}, [_usync_user(i) for i in range(100)])],
    )
    return {
        # an outgoing message to two devices
        "message": Node("message", _message_attrs(), [Node("participants", {}, devices)]),
        # a small stanza: a read receipt
        "receipt": Node(
            "receipt",
            {
                "id": "3EB0C431C26A1916E0B4",
                "from": "15551234567@s.whatsapp.net",
                "participant": "15557654321:2@s.whatsapp.net",
                "t": "1700000000",
                "type": "read",
            },
        ),
        # a message fanned out to 16 devices
        "fanout": Node(
            "message",
            _message_attrs(),
            [Node("participants", {}, fanout), Node("device-identity", {}, bytes(150))],
        ),
        # a usync result listing 100 users with their devices and LIDs (600 nodes)
        "usync": Node(
            "iq", {"from": "@s.whatsapp.net", "id": "28471.12345-3", "type": "result"}, [usync]
        ),
    }


# Operations per workload, relative to the iterations (big nodes take proportionally longer).
CODEC_SCALE = {"message": 1, "receipt": 1, "fanout": 5, "usync": 50}
# Codec timings are the median of several rounds on both sides: single rounds of either
# runtime vary a lot on a shared machine (JIT, garbage collection, other load).
CODEC_ROUNDS = 5


def codec_counts(iterations: int) -> dict[str, int]:
    """Operations per codec benchmark; "node_encode"/"node_decode" is the message workload."""
    counts = {}
    for name, scale in CODEC_SCALE.items():
        suffix = "" if name == "message" else f"_{name}"
        n = max(100, iterations // scale)
        counts[f"node_encode{suffix}"] = counts[f"node_decode{suffix}"] = n
    return counts


def codec(iterations: int) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per codec benchmark, and the sha256 of each workload's encoding."""
    spent: dict[str, float] = {}
    digests: dict[str, str] = {}
    counts = codec_counts(iterations)
    for name, node in workloads().items():
        suffix = "" if name == "message" else f"_{name}"
        data = encode_node(node)
        assert decode_node(data) == node
        digests[name] = hashlib.sha256(data).hexdigest()
        n = counts[f"node_encode{suffix}"]
        spent[f"node_encode{suffix}"], spent[f"node_decode{suffix}"] = _time_codec(node, data, n)
    return spent, digests


def _time_codec(node: Node, data: bytes, n: int) -> tuple[float, float]:
    """Median of CODEC_ROUNDS rounds, as the Node script does (with the same warm-ups)."""
    rounds = range(CODEC_ROUNDS)
    encode = median(timed(lambda _: encode_node(node), n, min(n, 2000)) for _ in rounds)
    decode = median(timed(lambda _: decode_node(data), n, min(n, 500)) for _ in rounds)
    return encode, decode


def frames(n: int) -> dict[str, float]:
    key, frame = os.urandom(32), os.urandom(200)
    writer = TransportCipher(key, key)
    sealed = [writer.encrypt(frame) for _ in range(n)]
    reader = TransportCipher(key, key)
    return {
        "frame_encrypt": timed(lambda _: writer.encrypt(frame), n),
        "frame_decrypt": timed(lambda i: reader.decrypt(sealed[i]), n),
    }


def _session_pair() -> tuple[SessionRecord, KeyPair, SessionRecord, KeyPair]:
    alice_id, bob_id = KeyPair.generate(), KeyPair.generate()
    signed, pre = KeyPair.generate(), KeyPair.generate()
    signature = sign(bob_id.private, with_key_type(signed.public))
    bundle = PreKeyBundle(2, 1, bob_id.public, 1, signed.public, signature, 1, pre.public)
    alice = build_session(None, alice_id, bundle)
    _, first = encrypt(alice, alice_id, 1, b"hello")
    bob, _, _ = decrypt_prekey_message(None, bob_id, 2, signed, pre, first)
    _, reply = encrypt(bob, bob_id, 2, b"hi")
    decrypt_message(alice, alice_id, reply)
    return alice, alice_id, bob, bob_id


def signal(n: int) -> dict[str, float]:
    alice, alice_id, bob, bob_id = _session_pair()
    text = os.urandom(120)
    for _ in range(200):  # warm both sides, as the Node script does
        decrypt_message(bob, bob_id, encrypt(alice, alice_id, 1, text)[1])
    bodies: list[bytes] = []
    spent_encrypt = timed(lambda _: bodies.append(encrypt(alice, alice_id, 1, text)[1]), n)
    spent_decrypt = timed(lambda i: decrypt_message(bob, bob_id, bodies[i]), n)
    return {"signal_encrypt": spent_encrypt, "signal_decrypt": spent_decrypt}


def baileys(iterations: int) -> dict[str, object]:
    proc = subprocess.run(
        ["node", str(HERE / "hotpaths.mjs"), str(iterations)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    signal_n = max(200, iterations // 10)
    counts = {
        **codec_counts(iterations),
        "frame_encrypt": iterations,
        "frame_decrypt": iterations,
        "signal_encrypt": signal_n,
        "signal_decrypt": signal_n,
    }
    spent_codec, digests = codec(iterations)
    ours = {**spent_codec, **frames(iterations), **signal(signal_n)}
    theirs = baileys(iterations)
    if theirs["codec_sha256"] != digests:  # both sides must have timed the same bytes
        raise SystemExit(f"codec workloads differ: {theirs['codec_sha256']} != {digests}")
    rows = []
    for name, n in counts.items():
        ours_ops = n / ours[name]
        theirs_ops = n / float(theirs[name])  # type: ignore[arg-type]
        rows.append(
            {
                "benchmark": name,
                "operations": n,
                "wahttp_ops_per_s": round(ours_ops),
                "baileys_ops_per_s": round(theirs_ops),
                "ratio_wahttp_over_baileys": round(ours_ops / theirs_ops, 3),
            }
        )
    report = {
        "benchmark": "hotpaths",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {"wahttp": __version__, **theirs["versions"]},  # type: ignore[dict-item]
        "results": rows,
    }
    out = HERE / "results" / "hotpaths.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'benchmark':16} {'wahttp/s':>12} {'baileys/s':>12} {'ratio':>7}")
    for row in rows:
        print(
            f"{row['benchmark']:16} {row['wahttp_ops_per_s']:>12} "
            f"{row['baileys_ops_per_s']:>12} {row['ratio_wahttp_over_baileys']:>7}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
