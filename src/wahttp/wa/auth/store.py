"""The auth store protocol: creds plus typed key categories, values in Baileys' JSON shape.

Categories and ids follow Baileys' SignalKeyStore (`pre-key`/"12", `session`/"123_1.0", ...),
so a store maps 1:1 onto the useMultiFileAuthState folder and onto per-key database rows.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from wahttp.wa.auth.creds import Creds

KeyValue = Any  # a JSON-able value, bytes allowed (BufferJSON wraps them on disk)


class AuthStore(Protocol):
    async def load_creds(self) -> Creds | None: ...

    async def save_creds(self, creds: Creds) -> None: ...

    async def get(self, category: str, ids: list[str]) -> dict[str, KeyValue]:
        """The stored values for these ids; missing ids are absent from the result."""
        ...

    async def set(self, changes: dict[str, dict[str, KeyValue | None]]) -> None:
        """Write (value) or delete (None) keys; one call is one atomic unit of durability."""
        ...

    async def clear(self) -> None:
        """Forget everything (logged out)."""
        ...

    async def all_keys(self) -> dict[str, dict[str, KeyValue]]:
        """Every stored key by category (for export; not for hot paths)."""
        ...


class MemoryAuthStore:
    """An AuthStore in memory, for tests and the simulator."""

    def __init__(self, creds: Creds | None = None) -> None:
        self._creds_json: dict[str, Any] | None = None
        self._keys: dict[str, dict[str, KeyValue]] = {}
        if creds is not None:
            self._creds_json = copy.deepcopy(creds.to_json())

    async def load_creds(self) -> Creds | None:
        return None if self._creds_json is None else Creds.from_json(self._creds_json)

    async def save_creds(self, creds: Creds) -> None:
        # A snapshot, as a real store keeps: later in-place edits must not count as saved.
        self._creds_json = copy.deepcopy(creds.to_json())

    async def get(self, category: str, ids: list[str]) -> dict[str, KeyValue]:
        bucket = self._keys.get(category, {})
        return {i: bucket[i] for i in ids if i in bucket}

    async def set(self, changes: dict[str, dict[str, KeyValue | None]]) -> None:
        for category, values in changes.items():
            bucket = self._keys.setdefault(category, {})
            for key_id, value in values.items():
                if value is None:
                    bucket.pop(key_id, None)
                else:
                    bucket[key_id] = value

    async def clear(self) -> None:
        self._creds_json = None
        self._keys.clear()

    async def all_keys(self) -> dict[str, dict[str, KeyValue]]:
        return {c: dict(v) for c, v in self._keys.items() if v}

    def count(self, category: str) -> int:
        return len(self._keys.get(category, {}))
