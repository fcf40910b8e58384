"""Credentials keep Baileys' creds.json shape, and BufferJSON reads what Baileys writes."""

from __future__ import annotations

import json

import pytest

from wahttp.wa import crypto
from wahttp.wa.auth import Creds, Me, MemoryAuthStore, new_creds
from wahttp.wa.auth.bufferjson import b64decode, from_json, to_json
from wahttp.wa.proto import adv_pb2


def test_new_creds_look_like_baileys_init_auth_creds() -> None:
    creds = new_creds()
    data = creds.to_json()
    for key in ("noiseKey", "pairingEphemeralKeyPair", "signedIdentityKey", "signedPreKey"):
        assert key in data
    assert 1 <= data["registrationId"] <= 16383
    assert len(b64decode(data["advSecretKey"])) == 32
    assert data["nextPreKeyId"] == 1 and data["firstUnuploadedPreKeyId"] == 1
    assert data["registered"] is False and "me" not in data
    spk = creds.signed_pre_key
    # The signed pre-key is signed in its 33-byte libsignal form, as libsignal checks it.
    assert crypto.verify(
        creds.signed_identity_key.public, crypto.with_key_type(spk.key_pair.public), spk.signature
    )


def test_creds_survive_a_json_file_round_trip() -> None:
    creds = new_creds()
    creds.me = Me("15551234567:3@s.whatsapp.net", "123456789012345:3@lid", "Bob")
    creds.account = adv_pb2.ADVSignedDeviceIdentity(
        details=b"d", accountSignatureKey=b"k" * 32, accountSignature=b"s", deviceSignature=b"x"
    )
    creds.routing_info = b"\x08\x01"
    creds.extra["myAppStateKeyId"] = "AAAAAA=="
    text = json.dumps(to_json(creds.to_json()))
    back = Creds.from_json(from_json(json.loads(text)))
    assert back.to_json() == creds.to_json()
    raw = json.loads(text)
    assert raw["noiseKey"]["private"]["type"] == "Buffer"
    assert raw["account"]["details"] == "ZA=="  # protobuf JSON: plain base64, not a Buffer
    assert raw["myAppStateKeyId"] == "AAAAAA=="


def test_bufferjson_revives_every_form_node_writes() -> None:
    assert from_json({"type": "Buffer", "data": "AQID"}) == b"\x01\x02\x03"
    assert from_json({"type": "Buffer", "data": [1, 2, 3]}) == b"\x01\x02\x03"
    assert from_json({"0": 5, "1": 6, "2": 7}) == b"\x05\x06\x07"  # a stringified Uint8Array
    assert from_json({"a": {"0": "x"}}) == {"a": {"0": "x"}}  # not bytes: values not numbers
    assert b64decode("_-8") == b"\xff\xef"  # url-safe and unpadded, as Buffer accepts


def test_mismatched_key_pair_is_rejected() -> None:
    data = new_creds().to_json()
    data["noiseKey"]["public"] = bytes(32)
    with pytest.raises(ValueError, match="does not match"):
        Creds.from_json(data)


async def test_memory_store_snapshots_and_deletes() -> None:
    store = MemoryAuthStore()
    creds = new_creds()
    await store.save_creds(creds)
    creds.next_pre_key_id = 99  # not saved
    loaded = await store.load_creds()
    assert loaded is not None and loaded.next_pre_key_id == 1
    await store.set({"pre-key": {"1": {"public": b"a"}, "2": {"public": b"b"}}})
    await store.set({"pre-key": {"1": None}})
    assert await store.get("pre-key", ["1", "2", "3"]) == {"2": {"public": b"b"}}
    await store.clear()
    assert await store.load_creds() is None and store.count("pre-key") == 0
