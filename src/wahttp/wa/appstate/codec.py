"""Decoding and encoding app-state patches and snapshots, with every MAC and the LT hash checked.

Stricter than Baileys on purpose: Baileys skips a record whose value MAC fails and carries on; we
refuse the whole patch or snapshot (nothing of it is applied, the version does not move), since a
partial apply leaves an LT hash the next patch can never match.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from wahttp.wa.appstate import keys as _k
from wahttp.wa.appstate.cipher import cbc_decrypt, cbc_encrypt
from wahttp.wa.appstate.keys import MutationKeys
from wahttp.wa.appstate.lthash import LT_HASH_SIZE, lt_hash_subtract_then_add
from wahttp.wa.proto import appstate_pb2 as pb

# The five collections, in the order real clients sync them.
COLLECTIONS = ("critical_block", "critical_unblock_low", "regular_high", "regular_low", "regular")

MAC_SIZE = 32
SET = pb.SyncdMutation.SET
REMOVE = pb.SyncdMutation.REMOVE

Operation = Literal["set", "remove"]
# key id -> the 32-byte key data of that app-state sync key, or None when we do not have it.
KeyLookup = Callable[[bytes], bytes | None]


class AppStateError(Exception):
    """A patch or snapshot that fails a MAC, the LT hash, or does not decode. Never applied."""


class MissingKeyError(AppStateError):
    """The patch is encrypted with an app-state sync key we have not received (yet)."""

    def __init__(self, key_id: bytes) -> None:
        super().__init__(f"missing app-state sync key {base64.b64encode(key_id).decode()}")
        self.key_id = key_id


@dataclass(slots=True)
class CollectionState:
    """A collection's version, LT hash and live records (base64 index MAC -> value MAC)."""

    version: int = 0
    hash: bytes = bytes(LT_HASH_SIZE)
    index_value_map: dict[str, bytes] = field(default_factory=dict)

    def copy(self) -> CollectionState:
        return CollectionState(self.version, self.hash, dict(self.index_value_map))


@dataclass(frozen=True, slots=True)
class Mutation:
    operation: Operation
    index: list[str]
    value: pb.SyncActionValue
    api_version: int = 0
    index_mac: bytes = b""
    value_mac: bytes = b""


def index_json(index: Sequence[str]) -> bytes:
    """The index as JSON.stringify writes it: no spaces, non-ASCII kept."""
    return json.dumps(list(index), separators=(",", ":"), ensure_ascii=False).encode()


class _KeyCache:
    def __init__(self, lookup: KeyLookup) -> None:
        self._lookup = lookup
        self._cache: dict[bytes, MutationKeys] = {}

    def get(self, key_id: bytes) -> MutationKeys:
        keys = self._cache.get(key_id)
        if keys is None:
            data = self._lookup(key_id)
            if data is None:
                raise MissingKeyError(key_id)
            keys = self._cache[key_id] = MutationKeys.derive(data)
        return keys


class _LtHashMixer:
    """Baileys' generator: a SET adds its value MAC and subtracts the one it overwrites; a REMOVE
    subtracts the live value; a REMOVE of an unknown index changes nothing (the MAC then fails)."""

    def __init__(self, state: CollectionState) -> None:
        self.map = dict(state.index_value_map)
        self.base = state.hash
        self.add: list[bytes] = []
        self.sub: list[bytes] = []

    def mix(self, index_mac: bytes, value_mac: bytes, operation: int) -> None:
        key = base64.b64encode(index_mac).decode()
        prev = self.map.get(key)
        if operation == REMOVE:
            if prev is None:
                return
            del self.map[key]
        else:
            self.add.append(value_mac)
            self.map[key] = value_mac
        if prev is not None:
            self.sub.append(prev)

    def finish(self) -> tuple[bytes, dict[str, bytes]]:
        return lt_hash_subtract_then_add(self.base, self.sub, self.add), self.map


def _decode_record(
    record: pb.SyncdRecord, operation: int, cache: _KeyCache
) -> tuple[Mutation, bytes, bytes]:
    keys = cache.get(record.keyId.id)
    blob = record.value.blob
    if len(blob) < MAC_SIZE + 32:
        raise AppStateError("record value too short")
    encrypted, mac = blob[:-MAC_SIZE], blob[-MAC_SIZE:]
    if not hmac.compare_digest(
        _k.value_mac(keys, operation != REMOVE, encrypted, record.keyId.id), mac
    ):
        raise AppStateError("value MAC mismatch")
    try:
        data = pb.SyncActionData.FromString(cbc_decrypt(keys.value_encryption, encrypted))
    except Exception as exc:  # bad padding, or protobuf's DecodeError
        raise AppStateError("undecryptable record value") from exc
    if not hmac.compare_digest(_k.index_mac(keys, data.index), record.index.blob):
        raise AppStateError("index MAC mismatch")
    try:
        index = json.loads(data.index.decode())
    except ValueError as exc:
        raise AppStateError("record index is not JSON") from exc
    if not isinstance(index, list) or not all(isinstance(part, str) for part in index):
        raise AppStateError("record index is not a list of strings")
    mutation = Mutation(
        "remove" if operation == REMOVE else "set",
        index,
        data.value,
        data.version,
        record.index.blob,
        mac,
    )
    return mutation, record.index.blob, mac


def decode_patch(
    name: str, patch: pb.SyncdPatch, state: CollectionState, lookup: KeyLookup
) -> tuple[CollectionState, list[Mutation]]:
    """Verify and decode one patch on top of `state`; returns the new state and the mutations.
    The patch's version must be set (the server omits it for version + 1: set it before)."""
    if patch.HasField("externalMutations"):
        raise AppStateError("external mutations must be downloaded and merged first")
    cache = _KeyCache(lookup)
    version = patch.version.version
    keys = cache.get(patch.keyId.id)
    value_macs = [m.record.value.blob[-MAC_SIZE:] for m in patch.mutations]
    expected = _k.patch_mac(keys, patch.snapshotMac, value_macs, version, name)
    if not hmac.compare_digest(expected, patch.patchMac):
        raise AppStateError("patch MAC mismatch")
    mixer = _LtHashMixer(state)
    mutations = []
    for m in patch.mutations:
        mutation, imac, vmac = _decode_record(m.record, m.operation, cache)
        mixer.mix(imac, vmac, m.operation)
        mutations.append(mutation)
    lt_hash, live = mixer.finish()
    if not hmac.compare_digest(_k.snapshot_mac(keys, lt_hash, version, name), patch.snapshotMac):
        raise AppStateError("LT hash mismatch (snapshot MAC of the patch)")
    return CollectionState(version, lt_hash, live), mutations


def decode_snapshot(
    name: str, snapshot: pb.SyncdSnapshot, lookup: KeyLookup
) -> tuple[CollectionState, list[Mutation]]:
    """Verify and decode a full snapshot: every record a SET on an empty state."""
    cache = _KeyCache(lookup)
    mixer = _LtHashMixer(CollectionState())
    mutations = []
    for record in snapshot.records:
        mutation, imac, vmac = _decode_record(record, SET, cache)
        mixer.mix(imac, vmac, SET)
        mutations.append(mutation)
    lt_hash, live = mixer.finish()
    version = snapshot.version.version
    keys = cache.get(snapshot.keyId.id)
    if not hmac.compare_digest(_k.snapshot_mac(keys, lt_hash, version, name), snapshot.mac):
        raise AppStateError("snapshot MAC mismatch")
    return CollectionState(version, lt_hash, live), mutations


@dataclass(frozen=True, slots=True)
class NewMutation:
    """A change to encode: SET or REMOVE of `index` with `value`, at API version `api_version`."""

    operation: Operation
    index: list[str]
    value: pb.SyncActionValue
    api_version: int
    iv: bytes | None = None  # fixed only in known-answer tests


def _encode_record(
    m: NewMutation, key_id: bytes, keys: MutationKeys
) -> tuple[pb.SyncdRecord, bytes, bytes]:
    index = index_json(m.index)
    data = pb.SyncActionData(index=index, padding=b"", version=m.api_version)
    data.value.CopyFrom(m.value)
    encrypted = cbc_encrypt(keys.value_encryption, data.SerializeToString(), m.iv)
    vmac = _k.value_mac(keys, m.operation == "set", encrypted, key_id)
    imac = _k.index_mac(keys, index)
    record = pb.SyncdRecord()
    record.index.blob = imac
    record.value.blob = encrypted + vmac
    record.keyId.id = key_id
    return record, imac, vmac


def encode_patch(
    name: str,
    state: CollectionState,
    key_id: bytes,
    key_data: bytes,
    mutations: Sequence[NewMutation],
) -> tuple[pb.SyncdPatch, CollectionState]:
    """Encode mutations as the next patch (version + 1) of `state`; returns it and the new state."""
    keys = MutationKeys.derive(key_data)
    patch = pb.SyncdPatch()
    mixer = _LtHashMixer(state)
    value_macs = []
    for m in mutations:
        record, imac, vmac = _encode_record(m, key_id, keys)
        op = SET if m.operation == "set" else REMOVE
        patch.mutations.add(operation=op).record.CopyFrom(record)
        mixer.mix(imac, vmac, op)
        value_macs.append(vmac)
    lt_hash, live = mixer.finish()
    version = state.version + 1
    snap = _k.snapshot_mac(keys, lt_hash, version, name)
    patch.version.version = version
    patch.snapshotMac = snap
    patch.patchMac = _k.patch_mac(keys, snap, value_macs, version, name)
    patch.keyId.id = key_id
    return patch, CollectionState(version, lt_hash, live)


def encode_snapshot(
    name: str, version: int, key_id: bytes, key_data: bytes, records: Sequence[NewMutation]
) -> tuple[pb.SyncdSnapshot, CollectionState]:
    """A snapshot of the live records (all SETs) at `version`."""
    keys = MutationKeys.derive(key_data)
    snapshot = pb.SyncdSnapshot()
    mixer = _LtHashMixer(CollectionState())
    for m in records:
        record, imac, vmac = _encode_record(m, key_id, keys)
        snapshot.records.append(record)
        mixer.mix(imac, vmac, SET)
    lt_hash, live = mixer.finish()
    snapshot.version.version = version
    snapshot.mac = _k.snapshot_mac(keys, lt_hash, version, name)
    snapshot.keyId.id = key_id
    return snapshot, CollectionState(version, lt_hash, live)
