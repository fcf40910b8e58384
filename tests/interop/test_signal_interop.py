"""wahttp.wa.signal against the real libsignal-node that Baileys uses, live.

signal_vectors.mjs makes the known-answer vectors frozen in tests/unit/wa/signal_vectors.json
(checked current here) and, with `peer`, runs libsignal-node as a conversation partner: our code
and libsignal exchange messages both ways, out of order, and hand session records to each other.
Needs Node.js and `npm ci` in tests/interop.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from wahttp.wa.crypto import KeyPair, sign, with_key_type
from wahttp.wa.signal import (
    EncType,
    PreKeyBundle,
    SessionRecord,
    build_session,
    decrypt_message,
    decrypt_prekey_message,
    encrypt,
    parse_prekey_message,
)

pytestmark = pytest.mark.interop

INTEROP_DIR = Path(__file__).resolve().parent
SCRIPT = INTEROP_DIR / "signal_vectors.mjs"
VECTORS_FILE = INTEROP_DIR.parent / "unit" / "wa" / "signal_vectors.json"


def _require_node() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (INTEROP_DIR / "node_modules" / "libsignal").is_dir():
        pytest.skip("tests/interop/node_modules is missing (run npm ci in tests/interop)")


def test_committed_vectors_are_current() -> None:
    _require_node()
    proc = subprocess.run(
        ["node", str(SCRIPT)], capture_output=True, check=False, timeout=120, cwd=INTEROP_DIR
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.decode() == VECTORS_FILE.read_text(), (
        "signal_vectors.json is stale: node tests/interop/signal_vectors.mjs > "
        "tests/unit/wa/signal_vectors.json"
    )


class NodePeer:
    """libsignal-node in a child process, one JSON request and answer per line."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT), "peer"],
            cwd=INTEROP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def __call__(self, op: str, **request: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        stdout: IO[str] | None = self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps({"op": op, **request}) + "\n")
        stdin.flush()
        answer: dict[str, Any] = json.loads(stdout.readline())
        assert "error" not in answer, f"libsignal-node failed {op}: {answer}"
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def node() -> Iterator[NodePeer]:
    _require_node()
    peer = NodePeer()
    try:
        yield peer
    finally:
        peer.close()


@dataclass
class Keys:
    """A device's Signal keys, for either side."""

    registration_id: int
    identity: KeyPair = field(default_factory=KeyPair.generate)
    signed_pre_key: KeyPair = field(default_factory=KeyPair.generate)
    pre_keys: dict[int, KeyPair] = field(default_factory=dict)

    def bundle(self, pre_key_id: int | None) -> PreKeyBundle:
        if pre_key_id is not None:
            self.pre_keys[pre_key_id] = KeyPair.generate()
        return PreKeyBundle(
            registration_id=self.registration_id,
            device_id=1,
            identity_key=self.identity.public,
            signed_pre_key_id=9,
            signed_pre_key=self.signed_pre_key.public,
            signed_pre_key_signature=sign(
                self.identity.private, with_key_type(self.signed_pre_key.public)
            ),
            pre_key_id=pre_key_id,
            pre_key=None if pre_key_id is None else self.pre_keys[pre_key_id].public,
        )

    def party(self, node: NodePeer, name: str) -> None:
        node(
            "party",
            name=name,
            identity=self.identity.private.hex(),
            registration_id=self.registration_id,
            signed_pre_key=self.signed_pre_key.private.hex(),
            pre_keys={str(i): k.private.hex() for i, k in self.pre_keys.items()},
        )


def bundle_json(bundle: PreKeyBundle) -> dict[str, Any]:
    return {
        "registration_id": bundle.registration_id,
        "device_id": bundle.device_id,
        "identity_key": bundle.identity_key.hex(),
        "signed_pre_key_id": bundle.signed_pre_key_id,
        "signed_pre_key": bundle.signed_pre_key.hex(),
        "signed_pre_key_signature": bundle.signed_pre_key_signature.hex(),
        "pre_key_id": bundle.pre_key_id,
        "pre_key": None if bundle.pre_key is None else bundle.pre_key.hex(),
    }


@dataclass
class Message:
    from_python: bool
    kind: EncType
    data: bytes
    text: bytes


class Conversation:
    """Our side ("py") against libsignal-node's ("node"); node knows us as peer "py"."""

    def __init__(self, node: NodePeer) -> None:
        self.node = node
        self.py = Keys(registration_id=4321)
        self.node_keys = Keys(registration_id=8765)
        self.record: SessionRecord | None = None
        self.consumed: list[int] = []

    def py_send(self, text: bytes) -> Message:
        assert self.record is not None
        kind, data = encrypt(self.record, self.py.identity, self.py.registration_id, text)
        return Message(True, kind, data, text)

    def node_send(self, text: bytes) -> Message:
        answer = self.node("encrypt", party="node", peer="py", plaintext=text.hex())
        return Message(False, answer["type"], bytes.fromhex(answer["ciphertext"]), text)

    def deliver(self, message: Message) -> None:
        if message.from_python:
            answer = self.node(
                "decrypt",
                party="node",
                peer="py",
                type=message.kind,
                ciphertext=message.data.hex(),
            )
            assert bytes.fromhex(answer["plaintext"]) == message.text
            return
        if message.kind == "msg":
            assert self.record is not None
            plaintext = decrypt_message(self.record, self.py.identity, message.data)
        else:
            header = parse_prekey_message(message.data)
            one_time = self.py.pre_keys.get(header.pre_key_id or -1)
            self.record, plaintext, used = decrypt_prekey_message(
                self.record,
                self.py.identity,
                self.py.registration_id,
                self.py.signed_pre_key,
                one_time,
                message.data,
            )
            if used is not None:
                self.consumed.append(used)
                del self.py.pre_keys[used]
        assert plaintext == message.text

    def exchange(self, rng: random.Random, turns: int, python_first: bool) -> int:
        """Alternate bursts, shuffled, some held back until after the peer's answer."""
        held: list[Message] = []
        count = 0
        for turn in range(turns):
            from_python = (turn % 2 == 0) == python_first
            send = self.py_send if from_python else self.node_send
            batch = [
                send(f"turn {turn} message {n} ".encode() * rng.randint(0, 4))
                for n in range(rng.randint(1, 3))
            ]
            count += len(batch)
            rng.shuffle(batch)
            late = [m for m in held if m.from_python != from_python]
            if len(batch) > 1 and rng.random() < 0.6:
                held.append(batch.pop())
            for message in batch + late:
                self.deliver(message)
            held = [m for m in held if m not in late]
        for message in held:
            self.deliver(message)
        return count


def test_python_initiates(node: NodePeer) -> None:
    talk = Conversation(node)
    bundle = talk.node_keys.bundle(pre_key_id=77)
    talk.node_keys.party(node, "node")
    talk.record = build_session(None, talk.py.identity, bundle)
    first = talk.py_send(b"first, a pkmsg")
    assert first.kind == "pkmsg"
    assert talk.exchange(random.Random(1), turns=16, python_first=True) >= 20
    talk.deliver(first)  # the very first pkmsg, delivered last: still decrypts
    assert talk.py_send(b"settled").kind == "msg"


def test_node_initiates(node: NodePeer) -> None:
    talk = Conversation(node)
    bundle = talk.py.bundle(pre_key_id=55)
    talk.node_keys.party(node, "node")
    node("build", party="node", peer="py", bundle=bundle_json(bundle))
    first = talk.node_send(b"first from node")
    assert first.kind == "pkmsg"
    assert talk.exchange(random.Random(2), turns=16, python_first=False) >= 20
    talk.deliver(first)
    assert talk.consumed == [55]
    assert talk.node_send(b"settled").kind == "msg"


def test_without_one_time_pre_keys(node: NodePeer) -> None:
    talk = Conversation(node)
    talk.node_keys.party(node, "node")
    talk.record = build_session(None, talk.py.identity, talk.node_keys.bundle(None))
    talk.deliver(talk.py_send(b"signed pre-key only"))
    talk.deliver(talk.node_send(b"answer"))
    node("build", party="node", peer="py", bundle=bundle_json(talk.py.bundle(None)))
    talk.deliver(talk.node_send(b"node starts over"))
    assert talk.consumed == []
    talk.exchange(random.Random(3), turns=6, python_first=True)


def test_records_move_between_implementations(node: NodePeer) -> None:
    talk = Conversation(node)
    bundle = talk.node_keys.bundle(5)
    talk.node_keys.party(node, "node")
    talk.record = build_session(None, talk.py.identity, bundle)
    talk.exchange(random.Random(4), turns=5, python_first=True)
    assert talk.record is not None

    # libsignal-node reads our record exactly as it serialises its own.
    ours = talk.record.to_json()
    talk.py.party(node, "py-clone")
    node("set_record", party="py-clone", peer="node", record=ours)
    assert node("get_record", party="py-clone", peer="node")["record"] == ours

    # ... and carries on with it: a clone of us in libsignal sends, and node decrypts.
    sent = node("encrypt", party="py-clone", peer="node", plaintext=b"from the clone".hex())
    answer = node(
        "decrypt", party="node", peer="py", type=sent["type"], ciphertext=sent["ciphertext"]
    )
    assert bytes.fromhex(answer["plaintext"]) == b"from the clone"

    # We take the clone's record back from libsignal's JSON and carry on.
    theirs = node("get_record", party="py-clone", peer="node")["record"]
    talk.record = SessionRecord.from_json(theirs)
    assert talk.record.to_json() == theirs
    talk.exchange(random.Random(5), turns=4, python_first=False)

    # libsignal's own record of us reads back unchanged.
    node_record = node("get_record", party="node", peer="py")["record"]
    assert SessionRecord.from_json(node_record).to_json() == node_record
