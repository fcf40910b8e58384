"""Mutation keys: five keys expanded from one app-state sync key's 32-byte key data."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from wahttp.wa.crypto import hkdf

MUTATION_KEYS_INFO = b"WhatsApp Mutation Keys"


@dataclass(frozen=True, slots=True)
class MutationKeys:
    """HKDF-SHA256(key data, no salt, "WhatsApp Mutation Keys", 160) split in five 32-byte keys."""

    index: bytes
    value_encryption: bytes
    value_mac: bytes
    snapshot_mac: bytes
    patch_mac: bytes

    @classmethod
    def derive(cls, key_data: bytes) -> MutationKeys:
        out = hkdf(key_data, 160, info=MUTATION_KEYS_INFO)
        return cls(out[0:32], out[32:64], out[64:96], out[96:128], out[128:160])

    def __repr__(self) -> str:
        return "MutationKeys(…)"


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def index_mac(keys: MutationKeys, index: bytes) -> bytes:
    """HMAC-SHA256(index key, the index JSON bytes)."""
    return hmac.new(keys.index, index, hashlib.sha256).digest()


def value_mac(keys: MutationKeys, set_op: bool, encrypted: bytes, key_id: bytes) -> bytes:
    """HMAC-SHA512 over op byte (1 SET, 2 REMOVE) + key id, the IV+ciphertext, and the 8-byte
    length of that first part; truncated to 32 bytes."""
    head = bytes([0x01 if set_op else 0x02]) + key_id
    data = head + encrypted + _u64(len(head))
    return hmac.new(keys.value_mac, data, hashlib.sha512).digest()[:32]


def snapshot_mac(keys: MutationKeys, lt_hash: bytes, version: int, name: str) -> bytes:
    """HMAC-SHA256 over the LT hash, the 8-byte big-endian version and the collection name."""
    return hmac.new(
        keys.snapshot_mac, lt_hash + _u64(version) + name.encode(), hashlib.sha256
    ).digest()


def patch_mac(
    keys: MutationKeys, snapshot: bytes, value_macs: list[bytes], version: int, name: str
) -> bytes:
    """HMAC-SHA256 over the snapshot MAC, every mutation's value MAC, the version and the name."""
    data = snapshot + b"".join(value_macs) + _u64(version) + name.encode()
    return hmac.new(keys.patch_mac, data, hashlib.sha256).digest()
