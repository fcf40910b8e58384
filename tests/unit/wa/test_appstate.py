"""wahttp.wa.appstate: known answers from Baileys, the LT hash, and tampering refused.

appstate_vectors.json is made by tests/interop/appstate_oracle.mjs (Baileys' encodeSyncdPatch,
LT_HASH_ANTI_TAMPERING and the whatsapp-rust-bridge key expansion on fixed inputs);
tests/interop/test_appstate_interop.py checks it is current and decodes our output with Baileys.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from wahttp.wa.appstate import (
    AppStateError,
    CollectionState,
    MissingKeyError,
    MutationKeys,
    NewMutation,
    decode_patch,
    decode_snapshot,
    encode_patch,
    encode_snapshot,
    lt_hash_subtract_then_add,
)
from wahttp.wa.proto import appstate_pb2 as pb

VECTORS = Path(__file__).with_name("appstate_vectors.json")


@cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def key_id() -> bytes:
    return bytes.fromhex(vectors()["keyId"])


def key_data() -> bytes:
    return bytes.fromhex(vectors()["mutationKeys"]["keyData"])


def lookup(kid: bytes) -> bytes | None:
    return key_data() if kid == key_id() else None


def state_of(j: dict[str, Any]) -> CollectionState:
    return CollectionState(
        j["version"],
        bytes.fromhex(j["hash"]),
        {k: bytes.fromhex(v) for k, v in j["indexValueMap"].items()},
    )


def test_mutation_keys_match_baileys() -> None:
    v = vectors()["mutationKeys"]
    keys = MutationKeys.derive(bytes.fromhex(v["keyData"]))
    assert keys.index.hex() == v["indexKey"]
    assert keys.value_encryption.hex() == v["valueEncryptionKey"]
    assert keys.value_mac.hex() == v["valueMacKey"]
    assert keys.snapshot_mac.hex() == v["snapshotMacKey"]
    assert keys.patch_mac.hex() == v["patchMacKey"]


def test_lt_hash_matches_baileys() -> None:
    v = vectors()["ltHash"]
    add = [bytes.fromhex(x) for x in v["add"]]
    sub = [bytes.fromhex(x) for x in v["sub"]]
    assert lt_hash_subtract_then_add(bytes.fromhex(v["base"]), sub, add).hex() == v["result"]
    assert lt_hash_subtract_then_add(bytes(128), [], add[:1]).hex() == v["emptyPlusOne"]


def test_lt_hash_add_then_subtract_is_identity() -> None:
    base = bytes(range(128))
    added = lt_hash_subtract_then_add(base, [], [b"x", b"y"])
    assert added != base
    assert lt_hash_subtract_then_add(added, [b"y", b"x"], []) == base
    with pytest.raises(ValueError):
        lt_hash_subtract_then_add(b"short", [], [])


@pytest.mark.parametrize("step", range(len(vectors()["patches"])))
def test_decode_baileys_patch(step: int) -> None:
    v = vectors()["patches"][step]
    patch = pb.SyncdPatch.FromString(bytes.fromhex(v["patch"]))
    state, mutations = decode_patch(v["name"], patch, state_of(v["before"]), lookup)
    after = state_of(v["after"])
    if v["operation"] == "remove":
        # Baileys' encodeSyncdPatch puts the removed index back in its own map (its decoder does
        # not); the LT hash is right either way.
        after.index_value_map.pop(next(iter(after.index_value_map.keys() - state.index_value_map)))
    assert (state.version, state.hash, state.index_value_map) == (
        after.version,
        after.hash,
        after.index_value_map,
    )
    assert len(mutations) == 1
    m = mutations[0]
    assert m.index == v["index"]
    assert m.operation == v["operation"]
    assert m.api_version == v["apiVersion"]
    assert m.value.SerializeToString() == bytes.fromhex(v["syncAction"])


@pytest.mark.parametrize("step", range(len(vectors()["patches"])))
def test_encode_matches_baileys_byte_for_byte(step: int) -> None:
    v = vectors()["patches"][step]
    theirs = pb.SyncdPatch.FromString(bytes.fromhex(v["patch"]))
    iv = theirs.mutations[0].record.value.blob[:16]
    value = pb.SyncActionValue.FromString(bytes.fromhex(v["syncAction"]))
    ours, state = encode_patch(
        v["name"],
        state_of(v["before"]),
        key_id(),
        key_data(),
        [NewMutation(v["operation"], v["index"], value, v["apiVersion"], iv)],
    )
    assert ours.SerializeToString() == bytes.fromhex(v["patch"])
    assert state.hash.hex() == v["after"]["hash"]


def first_patch() -> tuple[str, pb.SyncdPatch, CollectionState]:
    v = vectors()["patches"][0]
    return v["name"], pb.SyncdPatch.FromString(bytes.fromhex(v["patch"])), state_of(v["before"])


def test_tampered_value_is_refused() -> None:
    name, patch, before = first_patch()
    blob = bytearray(patch.mutations[0].record.value.blob)
    blob[20] ^= 1
    patch.mutations[0].record.value.blob = bytes(blob)
    with pytest.raises(AppStateError):
        decode_patch(name, patch, before, lookup)


def test_tampered_value_mac_with_fixed_patch_mac_is_refused() -> None:
    """Recomputing the patch MAC with the forged value MAC still fails the value MAC check."""
    name, patch, before = first_patch()
    blob = bytearray(patch.mutations[0].record.value.blob)
    blob[-1] ^= 1
    patch.mutations[0].record.value.blob = bytes(blob)
    from wahttp.wa.appstate import keys as k

    keys = MutationKeys.derive(key_data())
    patch.patchMac = k.patch_mac(
        keys, patch.snapshotMac, [bytes(blob[-32:])], patch.version.version, name
    )
    with pytest.raises(AppStateError, match="value MAC"):
        decode_patch(name, patch, before, lookup)


def test_tampered_patch_mac_and_snapshot_mac_and_index_are_refused() -> None:
    name, patch, before = first_patch()
    bad = pb.SyncdPatch()
    bad.CopyFrom(patch)
    bad.patchMac = bytes(32)
    with pytest.raises(AppStateError, match="patch MAC"):
        decode_patch(name, bad, before, lookup)
    with pytest.raises(AppStateError, match="patch MAC"):
        decode_patch("regular", patch, before, lookup)  # the name is under the MAC
    # Right MACs on a wrong base state: the LT hash (the patch's snapshot MAC) fails.
    wrong = CollectionState(0, bytes([1]) + bytes(127), {})
    with pytest.raises(AppStateError, match="LT hash"):
        decode_patch(name, patch, wrong, lookup)


def test_missing_key_is_reported_with_its_id() -> None:
    name, patch, before = first_patch()
    with pytest.raises(MissingKeyError) as info:
        decode_patch(name, patch, before, lambda _kid: None)
    assert info.value.key_id == key_id()


def test_encode_decode_round_trip_several_mutations_and_snapshot() -> None:
    jid = "15550002222@s.whatsapp.net"
    contact = pb.SyncActionValue(timestamp=1)
    contact.contactAction.fullName = "Grace"
    pin = pb.SyncActionValue(timestamp=2)
    pin.pinAction.pinned = True
    muts = [
        NewMutation("set", ["contact", jid], contact, 2),
        NewMutation("set", ["pin_v1", jid], pin, 5),
    ]
    patch, state = encode_patch("regular_low", CollectionState(), key_id(), key_data(), muts)
    decoded, mutations = decode_patch("regular_low", patch, CollectionState(), lookup)
    assert decoded.hash == state.hash and decoded.version == 1
    assert [m.index for m in mutations] == [["contact", jid], ["pin_v1", jid]]
    snapshot, snap_state = encode_snapshot("regular_low", 1, key_id(), key_data(), muts)
    from_snapshot, records = decode_snapshot("regular_low", snapshot, lookup)
    # Fresh random IVs: other value MACs, so compare with the snapshot's own state.
    assert from_snapshot.hash == snap_state.hash
    assert from_snapshot.index_value_map == snap_state.index_value_map
    assert from_snapshot.index_value_map.keys() == state.index_value_map.keys()
    assert records[0].value.contactAction.fullName == "Grace"
    snapshot.mac = bytes(32)
    with pytest.raises(AppStateError, match="snapshot MAC"):
        decode_snapshot("regular_low", snapshot, lookup)
    # A REMOVE takes the record out of the LT hash: back to the empty state's hash.
    remove = [NewMutation("remove", ["contact", jid], contact, 2)]
    patch2, state2 = encode_patch("regular_low", state, key_id(), key_data(), remove)
    decoded2, _ = decode_patch("regular_low", patch2, decoded, lookup)
    assert decoded2.hash == state2.hash
    assert len(decoded2.index_value_map) == 1


def test_mutation_keys_repr_hides_keys() -> None:
    assert "cf58" not in repr(MutationKeys.derive(bytes([1]) * 32))
