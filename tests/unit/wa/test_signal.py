"""wahttp.wa.signal: known answers from libsignal-node, conversations, failures, fuzzing.

signal_vectors.json is made by tests/interop/signal_vectors.mjs (libsignal-node with fixed keys
and a step clock); tests/interop/test_signal_interop.py checks it is current.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wahttp.wa.crypto import KeyPair, sign, with_key_type
from wahttp.wa.signal import (
    CLOSED_SESSIONS_MAX,
    MAX_MESSAGE_KEYS,
    MAX_RECEIVING_CHAINS,
    ChainType,
    DuplicateMessage,
    EncType,
    InvalidKey,
    InvalidKeyId,
    InvalidMessage,
    InvalidRecord,
    NoSession,
    PreKeyBundle,
    SessionRecord,
    SignalError,
    build_session,
    decrypt_message,
    decrypt_prekey_message,
    encrypt,
    has_open_session,
    parse_prekey_message,
    remote_identity,
)
from wahttp.wa.signal.messages import parse_whisper
from wahttp.wa.signal.ratchet import step_ratchet

VECTORS_FILE = Path(__file__).with_name("signal_vectors.json")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_FILE.read_text())
    return data


def vector_key(label: str) -> KeyPair:
    return KeyPair.from_private(bytes.fromhex(vectors()["keys"][label]))


def vector_bundle(data: dict[str, Any]) -> PreKeyBundle:
    pre_key = data["pre_key"]
    return PreKeyBundle(
        registration_id=data["registration_id"],
        device_id=data["device_id"],
        identity_key=bytes.fromhex(data["identity_key"]),
        signed_pre_key_id=data["signed_pre_key_id"],
        signed_pre_key=bytes.fromhex(data["signed_pre_key"]),
        signed_pre_key_signature=bytes.fromhex(data["signed_pre_key_signature"]),
        pre_key_id=data["pre_key_id"],
        pre_key=bytes.fromhex(pre_key) if pre_key else None,
    )


def compact(record: SessionRecord) -> str:
    return json.dumps(record.to_json(), separators=(",", ":"))


# -- known answers -----------------------------------------------------------------------------


class Replay:
    """Plays one party's side of a vector step with our code, from our state or libsignal's."""

    def __init__(self, reload: bool) -> None:
        self.reload = reload
        self.records: dict[tuple[str, str], SessionRecord] = {}
        self.libsignal_json: dict[tuple[str, str], dict[str, Any]] = {}
        self.pre_keys = {
            name: {int(i): vector_key(label) for i, label in party["pre_keys"].items()}
            for name, party in vectors()["parties"].items()
        }

    def record(self, pair: tuple[str, str]) -> SessionRecord | None:
        if self.reload and pair in self.libsignal_json:
            # Continue from what libsignal-node stored, not from our own state.
            return SessionRecord.from_json(self.libsignal_json[pair])
        return self.records.get(pair)

    def run(self, step: dict[str, Any]) -> None:
        party = vectors()["parties"][step["actor"]]
        identity = vector_key(party["identity"])
        pair = (step["actor"], step["peer"])
        record = self.record(pair)
        before = None if record is None else compact(record)
        generated = [vector_key(label) for label in step["generated"]]
        ratchet = generated[0] if generated else None
        now = step["now"]
        if step["op"] == "build":
            bundle = vector_bundle(step["bundle"])
            base, ratchet = generated
            record = build_session(
                record, identity, bundle, base_key=base, ratchet_key=ratchet, now=now
            )
        elif step["op"] == "encrypt":
            assert record is not None
            plaintext = bytes.fromhex(step["plaintext"])
            kind, data = encrypt(record, identity, party["registration_id"], plaintext)
            assert (kind, data.hex()) == (step["type"], step["ciphertext"])
        elif "error" in step:
            # The only failure in the vectors: a msg delivered twice (libsignal's
            # MessageCounterError, wrapped in SessionError by decryptWithSessions).
            assert record is not None
            with pytest.raises(DuplicateMessage):
                decrypt_message(record, identity, bytes.fromhex(step["ciphertext"]), now=now)
            assert compact(record) == before
        elif step["type"] == "pkmsg":
            data = bytes.fromhex(step["ciphertext"])
            header = parse_prekey_message(data)
            one_time = self.pre_keys[step["actor"]].get(header.pre_key_id or -1)
            signed = vector_key(party["signed_pre_key"])
            record, plaintext, used = decrypt_prekey_message(
                record,
                identity,
                party["registration_id"],
                signed,
                one_time,
                data,
                ratchet_key=ratchet,
                now=now,
            )
            assert plaintext.hex() == step["plaintext"]
            assert used == step["consumed_pre_key"]
            if used is not None:
                del self.pre_keys[step["actor"]][used]
        else:
            assert record is not None
            data = bytes.fromhex(step["ciphertext"])
            plaintext = decrypt_message(record, identity, data, ratchet_key=ratchet, now=now)
            assert plaintext.hex() == step["plaintext"]
        assert record is not None
        assert record.to_json() == step["record"]
        assert compact(record) == step["record_text"]  # byte for byte, key order included
        self.records[pair] = record
        self.libsignal_json[pair] = step["record"]


def _scenarios() -> list[Any]:
    return [pytest.param(s, id=s["name"]) for s in vectors()["scenarios"]]


@pytest.mark.parametrize("reload", [False, True], ids=["own-state", "libsignal-state"])
@pytest.mark.parametrize("scenario", _scenarios())
def test_matches_libsignal_step_by_step(scenario: dict[str, Any], reload: bool) -> None:
    replay = Replay(reload)
    for index, step in enumerate(scenario["steps"]):
        try:
            replay.run(step)
        except AssertionError as exc:
            raise AssertionError(f"step {index} ({step['actor']} {step['op']}): {exc}") from exc


def test_libsignal_records_round_trip() -> None:
    for scenario in vectors()["scenarios"]:
        for step in scenario["steps"]:
            record = SessionRecord.from_json(step["record"])
            assert record.to_json() == step["record"]
            assert compact(record) == step["record_text"]


def test_vectors_cover_the_record_quirks() -> None:
    texts = [s["record_text"] for sc in vectors()["scenarios"] for s in sc["steps"]]
    closed_chain = '"chainKey":{"counter":2},'  # a closed chain has no key at all
    assert any(closed_chain in t for t in texts)
    assert any('"preKeyId":31' in t for t in texts)
    assert any('"closed":-1' in t and '"closed":17' in t for t in texts)
    assert any('"messageKeys":{"0":' in t for t in texts)


def test_signed_pre_key_signature_from_libsignal_verifies() -> None:
    # curve25519-js puts the Edwards sign bit in the signature: both values must verify.
    parties = vectors()["parties"].values()
    sign_bits = {bytes.fromhex(p["signed_pre_key_signature"])[63] >> 7 for p in parties}
    assert sign_bits == {0, 1}
    for party in parties:
        identity = vector_key(party["identity"])
        bundle = PreKeyBundle(
            registration_id=1,
            device_id=0,
            identity_key=identity.public,
            signed_pre_key_id=party["signed_pre_key_id"],
            signed_pre_key=vector_key(party["signed_pre_key"]).public,
            signed_pre_key_signature=bytes.fromhex(party["signed_pre_key_signature"]),
        )
        assert has_open_session(build_session(None, KeyPair.generate(), bundle))


# -- conversations between two of our own devices ----------------------------------------------


@dataclass
class Device:
    """One side of a conversation, holding its keys and its records by peer name."""

    name: str
    registration_id: int
    identity: KeyPair = field(default_factory=KeyPair.generate)
    signed_pre_key: KeyPair = field(default_factory=KeyPair.generate)
    pre_keys: dict[int, KeyPair] = field(default_factory=dict)
    records: dict[str, SessionRecord] = field(default_factory=dict)

    def bundle(self, pre_key_id: int | None = None) -> PreKeyBundle:
        pre_key = None
        if pre_key_id is not None:
            pre_key = self.pre_keys.setdefault(pre_key_id, KeyPair.generate()).public
        return PreKeyBundle(
            registration_id=self.registration_id,
            device_id=1,
            identity_key=self.identity.public,
            signed_pre_key_id=5,
            signed_pre_key=self.signed_pre_key.public,
            signed_pre_key_signature=sign(
                self.identity.private, with_key_type(self.signed_pre_key.public)
            ),
            pre_key_id=pre_key_id,
            pre_key=pre_key,
        )

    def start(self, peer: Device, pre_key_id: int | None = 1) -> None:
        record = self.records.get(peer.name)
        self.records[peer.name] = build_session(record, self.identity, peer.bundle(pre_key_id))

    def send(self, peer: Device, text: bytes) -> tuple[EncType, bytes]:
        return encrypt(self.records[peer.name], self.identity, self.registration_id, text)

    def receive(self, peer: Device, kind: EncType, data: bytes) -> bytes:
        record = self.records.get(peer.name)
        if kind == "msg":
            assert record is not None
            return decrypt_message(record, self.identity, data)
        header = parse_prekey_message(data)
        one_time = self.pre_keys.get(header.pre_key_id) if header.pre_key_id else None
        record, plaintext, used = decrypt_prekey_message(
            record, self.identity, self.registration_id, self.signed_pre_key, one_time, data
        )
        if used is not None:
            del self.pre_keys[used]
        self.records[peer.name] = record
        return plaintext


@pytest.fixture
def pair() -> tuple[Device, Device]:
    alice, bob = Device("alice", 1234), Device("bob", 5678)
    alice.start(bob)
    return alice, bob


def test_first_messages_are_pkmsgs_until_answered(pair: tuple[Device, Device]) -> None:
    alice, bob = pair
    first = [alice.send(bob, b"one"), alice.send(bob, b"two")]
    assert [kind for kind, _ in first] == ["pkmsg", "pkmsg"]
    header = parse_prekey_message(first[0][1])
    assert (header.registration_id, header.pre_key_id, header.signed_pre_key_id) == (1234, 1, 5)
    assert header.identity_key == with_key_type(alice.identity.public)
    assert bob.receive(alice, *first[0]) == b"one"
    assert bob.pre_keys == {}  # the one-time pre-key was used up
    assert bob.receive(alice, *first[1]) == b"two"  # same base key: the session is reused
    assert remote_identity(bob.records["alice"]) == with_key_type(alice.identity.public)
    kind, reply = bob.send(alice, b"three")
    assert kind == "msg"
    assert alice.receive(bob, kind, reply) == b"three"
    assert alice.send(bob, b"four")[0] == "msg"


@dataclass
class InFlight:
    sender: Device
    receiver: Device
    kind: EncType
    data: bytes
    text: bytes

    def deliver(self) -> None:
        assert self.receiver.receive(self.sender, self.kind, self.data) == self.text


def test_long_conversation_out_of_order(pair: tuple[Device, Device]) -> None:
    alice, bob = pair
    rng = random.Random(7)
    held: list[InFlight] = []
    for turn in range(30):
        sender, receiver = (alice, bob) if turn % 2 == 0 else (bob, alice)
        batch = []
        for n in range(rng.randint(1, 4)):
            text = f"{sender.name} {turn}.{n}".encode() * rng.randint(0, 5)
            batch.append(InFlight(sender, receiver, *sender.send(receiver, text), text))
        rng.shuffle(batch)
        late = [m for m in held if m.receiver is sender]  # held back since the peer's last turn
        if len(batch) > 1 and rng.random() < 0.6:
            held.append(batch.pop())  # arrives after the peer has answered
        for message in batch:
            message.deliver()
        for message in late:
            held.remove(message)
            message.deliver()
    for message in held:
        message.deliver()


def test_duplicates_are_refused(pair: tuple[Device, Device]) -> None:
    alice, bob = pair
    pkmsg = alice.send(bob, b"once")
    bob.receive(alice, *pkmsg)
    with pytest.raises(DuplicateMessage):
        bob.receive(alice, *pkmsg)
    msg = bob.send(alice, b"reply")
    alice.receive(bob, *msg)
    before = compact(alice.records["bob"])
    with pytest.raises(DuplicateMessage):
        alice.receive(bob, *msg)
    assert compact(alice.records["bob"]) == before


def _answered(pair: tuple[Device, Device]) -> tuple[Device, Device]:
    alice, bob = pair
    bob.receive(alice, *alice.send(bob, b"hello"))
    alice.receive(bob, *bob.send(alice, b"hi"))
    return alice, bob


def test_too_far_into_the_future_is_refused(pair: tuple[Device, Device]) -> None:
    alice, bob = _answered(pair)
    sent = [alice.send(bob, b"%d" % n) for n in range(2002)]
    assert bob.receive(alice, *sent[0]) == b"0"
    record = bob.records["alice"]
    before = compact(record)
    # bob's chain for alice's current ratchet key stands at counter 0 now.
    with pytest.raises(InvalidMessage, match="2000"):
        decrypt_message(record, bob.identity, sent[2001][1])
    assert compact(record) == before
    assert bob.receive(alice, *sent[2000]) == b"2000"
    assert bob.receive(alice, *sent[2001]) == b"2001"
    assert bob.receive(alice, *sent[5]) == b"5"


def test_skipped_keys_are_bounded(pair: tuple[Device, Device]) -> None:
    alice, bob = _answered(pair)
    sent = [alice.send(bob, b"%d" % n) for n in range(3000)]
    bob.receive(alice, *sent[1500])
    bob.receive(alice, *sent[2999])
    chains = bob.records["alice"].open_entry()
    assert chains is not None
    stored = [len(c.message_keys) for c in chains.chains.values()]
    # 2999 keys were due (0..1499, 1501..2999): the newest 2000 stayed, then 2999 was used.
    assert max(stored) == MAX_MESSAGE_KEYS - 1
    with pytest.raises(DuplicateMessage):  # the oldest keys went first
        bob.receive(alice, *sent[998])
    assert bob.receive(alice, *sent[999]) == b"999"
    assert bob.receive(alice, *sent[2998]) == b"2998"


def test_receiving_chains_are_bounded(pair: tuple[Device, Device]) -> None:
    alice, bob = _answered(pair)
    for _ in range(12):
        bob.receive(alice, *alice.send(bob, b"ping"))
        alice.receive(bob, *bob.send(alice, b"pong"))
    for device in (alice, bob):
        entry = next(iter(device.records[("bob" if device is alice else "alice")]))
        kinds = [c.chain_type for c in entry.chains.values()]
        assert kinds.count(ChainType.RECEIVING) == MAX_RECEIVING_CHAINS
        assert kinds.count(ChainType.SENDING) == 1


def test_chains_with_skipped_keys_outlive_the_bound(pair: tuple[Device, Device]) -> None:
    alice, bob = _answered(pair)
    late = alice.send(bob, b"held for a long time")
    bob.receive(alice, *alice.send(bob, b"overtakes it"))
    for _ in range(3 * MAX_RECEIVING_CHAINS):
        alice.receive(bob, *bob.send(alice, b"pong"))
        bob.receive(alice, *alice.send(bob, b"ping"))
    assert bob.receive(alice, *late) == b"held for a long time"
    assert bob.receive(alice, *alice.send(bob, b"and on")) == b"and on"


def test_tampering_is_detected(pair: tuple[Device, Device]) -> None:
    alice, bob = _answered(pair)
    kind, data = alice.send(bob, b"untouched")
    record = bob.records["alice"]
    before = compact(record)
    for index in (len(data) - 1, len(data) - 12, 40):
        bad = bytearray(data)
        bad[index] ^= 1
        with pytest.raises(InvalidMessage):
            decrypt_message(record, bob.identity, bytes(bad))
    assert compact(record) == before
    assert bob.receive(alice, kind, data) == b"untouched"


def test_wrong_identity_fails_the_mac(pair: tuple[Device, Device]) -> None:
    alice, bob = _answered(pair)
    _, data = alice.send(bob, b"for bob")
    with pytest.raises(InvalidMessage):
        decrypt_message(bob.records["alice"], KeyPair.generate(), data)
    # A pkmsg decrypted with someone else's identity derives other keys altogether.
    carol, dave = Device("carol", 1), Device("dave", 2)
    carol.start(dave)
    _, pkmsg = carol.send(dave, b"x")
    dave.identity = KeyPair.generate()
    with pytest.raises(InvalidMessage):
        dave.receive(carol, "pkmsg", pkmsg)
    assert "carol" not in dave.records


def test_bundle_signature_is_checked() -> None:
    alice, bob = Device("alice", 1), Device("bob", 2)
    good = bob.bundle(3)
    for bad in (
        PreKeyBundle(**{**_fields(good), "signed_pre_key_signature": bytes(64)}),
        PreKeyBundle(**{**_fields(good), "identity_key": KeyPair.generate().public}),
        PreKeyBundle(**{**_fields(good), "signed_pre_key": b"\x05" + bytes(31)}),
        PreKeyBundle(**{**_fields(good), "pre_key": b"\x01" * 5}),
        PreKeyBundle(**{**_fields(good), "pre_key_id": None}),
    ):
        with pytest.raises(InvalidKey):
            build_session(None, alice.identity, bad)
    assert has_open_session(build_session(None, alice.identity, good))


def _fields(bundle: PreKeyBundle) -> dict[str, Any]:
    return {name: getattr(bundle, name) for name in PreKeyBundle.__dataclass_fields__}


def test_missing_pre_keys(pair: tuple[Device, Device]) -> None:
    alice, bob = pair
    _, data = alice.send(bob, b"x")
    with pytest.raises(InvalidKeyId):
        decrypt_prekey_message(None, bob.identity, 1, bob.signed_pre_key, None, data)
    with pytest.raises(InvalidKeyId):
        decrypt_prekey_message(None, bob.identity, 1, None, bob.pre_keys[1], data)
    record, plaintext, used = decrypt_prekey_message(
        None, bob.identity, 1, bob.signed_pre_key, bob.pre_keys[1], data
    )
    assert (plaintext, used) == (b"x", 1)
    # Once the session exists, a repeated pkmsg needs no pre-keys any more.
    _, again = alice.send(bob, b"y")
    assert decrypt_prekey_message(record, bob.identity, 1, None, None, again)[1:] == (b"y", None)


def test_no_session() -> None:
    record = SessionRecord()
    assert not has_open_session(record)
    assert remote_identity(record) is None
    with pytest.raises(NoSession):
        encrypt(record, KeyPair.generate(), 1, b"x")
    alice, bob = Device("alice", 1), Device("bob", 2)
    alice.start(bob)
    _, data = alice.send(bob, b"x")
    with pytest.raises(NoSession):
        decrypt_message(record, bob.identity, parse_prekey_message(data).message)


def test_new_session_closes_the_old_one_and_late_messages_still_decrypt(
    pair: tuple[Device, Device],
) -> None:
    alice, bob = _answered(pair)
    late = bob.send(alice, b"sent before alice starts over")
    alice.start(bob, pre_key_id=2)
    record = alice.records["bob"]
    assert len(record) == 2
    assert sum(entry.is_open for entry in record) == 1
    assert bob.receive(alice, *alice.send(bob, b"new session")) == b"new session"
    # The late msg belongs to the closed session; decrypting it must leave the open one alone
    # (libsignal-node lets the failed attempt on the open session change it).
    open_before = record.open_entry()
    assert alice.receive(bob, *late) == b"sent before alice starts over"
    assert record.open_entry() == open_before
    kind, reply = bob.send(alice, b"on the new session")
    assert kind == "msg"
    assert alice.receive(bob, kind, reply) == b"on the new session"
    assert bob.receive(alice, *alice.send(bob, b"both ways")) == b"both ways"


def test_closed_sessions_are_capped() -> None:
    alice, bob = Device("alice", 1), Device("bob", 2)
    record = None
    for n in range(CLOSED_SESSIONS_MAX + 3):
        record = build_session(record, alice.identity, bob.bundle(), now=1000 + n)
    assert record is not None
    assert len(record) == CLOSED_SESSIONS_MAX + 3  # libsignal prunes when it saves after use
    oldest = [e.base_key for e in record][:3]
    assert [e.closed for e in record][:3] == [1001, 1002, 1003]
    encrypt(record, alice.identity, 1, b"x")
    assert len(record) == CLOSED_SESSIONS_MAX
    assert not set(oldest) & {e.base_key for e in record}
    assert SessionRecord.from_json(record.to_json()).to_json() == record.to_json()


def test_record_json_round_trip(pair: tuple[Device, Device]) -> None:
    alice, bob = _answered(pair)
    for n in range(5):
        alice.send(bob, b"%d" % n)
    bob.receive(alice, *alice.send(bob, b"skip some"))
    for device, peer in ((alice, "bob"), (bob, "alice")):
        data = device.records[peer].to_json()
        assert SessionRecord.from_json(json.loads(json.dumps(data))).to_json() == data
    # Our records carry on after a trip through JSON.
    alice.records["bob"] = SessionRecord.from_json(alice.records["bob"].to_json())
    bob.records["alice"] = SessionRecord.from_json(bob.records["alice"].to_json())
    assert bob.receive(alice, *alice.send(bob, b"after")) == b"after"
    assert alice.receive(bob, *bob.send(alice, b"reply")) == b"reply"


def test_record_json_versions_and_shape() -> None:
    step = vectors()["scenarios"][0]["steps"][5]["record"]
    legacy = copy.deepcopy(step)
    del legacy["version"]
    legacy["registrationId"] = 99
    for entry in legacy["_sessions"].values():
        del entry["registrationId"]
    migrated = SessionRecord.from_json(legacy).to_json()
    assert [e["registrationId"] for e in migrated["_sessions"].values()] == [99]
    with pytest.raises(InvalidRecord):
        SessionRecord.from_json({**step, "version": "v2"})
    broken = copy.deepcopy(step)
    next(iter(broken["_sessions"].values()))["currentRatchet"]["rootKey"] = 5
    with pytest.raises(InvalidRecord):
        SessionRecord.from_json(broken)
    assert SessionRecord.from_json({"_sessions": {}, "version": "v1"}).to_json() == {
        "_sessions": {},
        "version": "v1",
    }


def test_reprs_hide_keys(pair: tuple[Device, Device]) -> None:
    alice, _ = pair
    record = alice.records["bob"]
    entry = record.open_entry()
    assert entry is not None
    text = repr(record) + repr(entry) + repr(list(entry.chains.values()))
    assert entry.root_key.hex() not in text
    assert entry.ratchet_key.private.hex() not in text
    assert "root_key" not in text


# -- fuzzing -----------------------------------------------------------------------------------


@cache
def _fuzz_state() -> tuple[Device, Device, bytes, bytes]:
    alice, bob = Device("alice", 1), Device("bob", 2)
    alice.start(bob)
    _, pkmsg = alice.send(bob, b"first")
    bob.receive(alice, "pkmsg", pkmsg)
    _, msg = bob.send(alice, b"second")
    return alice, bob, pkmsg, msg


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_signal_errors(data: bytes) -> None:
    alice, bob, _, _ = _fuzz_state()
    for attempt in (
        lambda: parse_prekey_message(data),
        lambda: decrypt_message(alice.records["bob"], alice.identity, data),
        lambda: decrypt_prekey_message(
            bob.records["alice"], bob.identity, 2, bob.signed_pre_key, None, data
        ),
        lambda: decrypt_prekey_message(None, bob.identity, 2, bob.signed_pre_key, None, data),
    ):
        with contextlib.suppress(SignalError):
            attempt()


@FUZZ
@given(st.data())
def test_mutated_messages_raise_only_signal_errors(data: st.DataObject) -> None:
    alice, bob, pkmsg, msg = _fuzz_state()
    for original, attempt in (
        (msg, lambda m: decrypt_message(alice.records["bob"], alice.identity, m)),
        (
            pkmsg,
            lambda m: decrypt_prekey_message(None, bob.identity, 2, bob.signed_pre_key, None, m),
        ),
    ):
        mutated = bytearray(original)
        for _ in range(data.draw(st.integers(1, 4))):
            index = data.draw(st.integers(0, len(mutated) - 1))
            mutated[index] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(mutated)))
        with contextlib.suppress(SignalError):
            attempt(bytes(mutated[:cut] if data.draw(st.booleans()) else mutated))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@FUZZ
@given(st.data())
def test_damaged_records_raise_invalid_record(data: st.DataObject) -> None:
    record = copy.deepcopy(vectors()["scenarios"][0]["steps"][20]["record"])
    node: Any = record
    path: list[str] = []
    while isinstance(node, dict) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node)))
        path.append(key)
        if not isinstance(node[key], dict):
            break
        node = node[key]
    if isinstance(node, dict) and node:
        target = data.draw(st.sampled_from(sorted(node)))
        if data.draw(st.booleans()):
            del node[target]
        else:
            node[target] = data.draw(_json_values)
    with contextlib.suppress(InvalidRecord):
        SessionRecord.from_json(record)


def test_simultaneous_start_keeps_our_pending_session_open() -> None:
    """Both sides start at once. libsignal-node (Baileys) switches to the session our pkmsg
    starts and encrypts only with its open session, so we must keep ours open and archive
    theirs, else we would send on a session the peer has closed."""
    alice, bob = Device("alice", 1234), Device("bob", 5678)
    alice.start(bob, pre_key_id=1)
    bob.start(alice, pre_key_id=2)
    from_alice = alice.send(bob, b"a0")
    from_bob = bob.send(alice, b"b0")
    ours_before = alice.records["bob"].open_entry()
    assert ours_before is not None
    assert alice.receive(bob, *from_bob) == b"b0"  # read via their (archived) session
    ours_after = alice.records["bob"].open_entry()
    assert ours_after is not None and ours_after.base_key == ours_before.base_key
    assert bob.receive(alice, *from_alice) == b"a0"
    # Every further message decrypts, whichever session each side ends up sending on.
    for i in range(5):
        kind, data = alice.send(bob, f"a{i + 1}".encode())
        assert bob.receive(alice, kind, data) == f"a{i + 1}".encode()
        kind, data = bob.send(alice, f"b{i + 1}".encode())
        assert alice.receive(bob, kind, data) == f"b{i + 1}".encode()


def test_a_settled_session_gives_way_to_a_new_pkmsg(pair: tuple[Device, Device]) -> None:
    """The peer lost its state and starts over: a settled session of ours is replaced."""
    alice, bob = pair
    kind, data = alice.send(bob, b"hi")
    bob.receive(alice, kind, data)
    kind, data = bob.send(alice, b"answer")
    alice.receive(bob, kind, data)  # alice's session is settled now (no pending pre-key)
    fresh = Device("bob", 5678, identity=bob.identity, signed_pre_key=bob.signed_pre_key)
    fresh.start(alice, pre_key_id=9)
    kind, data = fresh.send(alice, b"after reinstall")
    assert kind == "pkmsg" and alice.receive(fresh, kind, data) == b"after reinstall"
    kind, data = alice.send(fresh, b"welcome back")
    assert fresh.receive(alice, kind, data) == b"welcome back"


def test_a_sender_whose_state_went_back_in_time_is_still_read(pair: tuple[Device, Device]) -> None:
    """libsignal-node under a racing store: alice loses the write of a sent message, so her
    next ratchet step carries previous counter -1 (0xFFFFFFFF) for a chain bob has read from."""
    alice, bob = _answered(pair)
    before = SessionRecord.from_json(alice.records["bob"].to_json())
    assert bob.receive(alice, *alice.send(bob, b"lost write")) == b"lost write"
    alice.records["bob"] = before  # alice's chain is unused again (counter -1)
    assert alice.receive(bob, *bob.send(alice, b"reply")) == b"reply"
    kind, data = alice.send(bob, b"after")
    assert parse_whisper(data).previous_counter == 0xFFFFFFFF  # as libsignal-node writes it
    assert bob.receive(alice, kind, data) == b"after"
    assert alice.receive(bob, *bob.send(alice, b"and on")) == b"and on"


def test_a_previous_counter_far_ahead_closes_the_chain_without_filling_it(
    pair: tuple[Device, Device],
) -> None:
    alice, bob = _answered(pair)
    bob.receive(alice, *alice.send(bob, b"one"))
    entry = bob.records["alice"].open_entry()
    assert entry is not None
    last = entry.last_remote_ratchet
    step_ratchet(entry, KeyPair.generate().public, 50_000, KeyPair.generate())
    assert entry.chains[last].key is None and not entry.chains[last].message_keys
