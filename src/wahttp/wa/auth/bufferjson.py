"""Baileys' BufferJSON: how binary values are written into its JSON auth files.

Bytes become {"type": "Buffer", "data": "<base64>"}; on read, that shape and objects whose
keys are all integers with integer values (a JSON.stringify-ed Uint8Array) revive as bytes.
"""

from __future__ import annotations

import base64
from typing import Any

JSON = Any


def to_json(value: JSON) -> JSON:
    """Replace every bytes value (recursively) with Baileys' Buffer object."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"type": "Buffer", "data": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(value: JSON) -> JSON:
    """Revive Baileys' Buffer objects (recursively) into bytes."""
    if isinstance(value, dict):
        if value.get("type") == "Buffer" and isinstance(value.get("data"), str):
            return b64decode(value["data"])
        if value.get("type") == "Buffer" and isinstance(value.get("data"), list):
            return bytes(value["data"])
        if value and _is_byte_map(value):
            return bytes(value[k] for k in sorted(value, key=int))
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def _is_byte_map(value: dict[str, Any]) -> bool:
    return all(k.isdigit() for k in value) and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value.values()
    )


def b64decode(text: str) -> bytes:
    """Decode standard or url-safe base64, padded or not (Node's Buffer accepts all of them)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()
