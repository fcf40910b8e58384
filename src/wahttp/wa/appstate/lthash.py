"""The LT hash ("WhatsApp Patch Integrity"): a 128-byte summation hash over live value MACs.

Each value MAC expands (HKDF-SHA256, no salt) to 128 bytes read as 64 little-endian uint16 that
are added to (SET) or subtracted from (a removed or overwritten value) the state, modulo 2^16.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from wahttp.wa.crypto import hkdf

LT_HASH_INFO = b"WhatsApp Patch Integrity"
LT_HASH_SIZE = 128
_FMT = "<64H"


def _expand(item: bytes) -> tuple[int, ...]:
    return struct.unpack(_FMT, hkdf(item, LT_HASH_SIZE, info=LT_HASH_INFO))


def lt_hash_subtract_then_add(
    base: bytes, subtract: Iterable[bytes], add: Iterable[bytes]
) -> bytes:
    if len(base) != LT_HASH_SIZE:
        raise ValueError("an LT hash has 128 bytes")
    acc = list(struct.unpack(_FMT, base))
    for item in subtract:
        for i, v in enumerate(_expand(item)):
            acc[i] = (acc[i] - v) & 0xFFFF
    for item in add:
        for i, v in enumerate(_expand(item)):
            acc[i] = (acc[i] + v) & 0xFFFF
    return struct.pack(_FMT, *acc)
