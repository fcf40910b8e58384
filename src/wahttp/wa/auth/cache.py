"""A read cache of Signal session records and PN -> LID mappings in front of a client's
auth store.

Every message sent or received reads the session records of its peers' devices (and the LID
mappings that give their addresses) and writes the records back changed. Their one writer is
the running client (a session is owned by one worker at a time), so what it last wrote is
what the store holds: reading it back from PostgreSQL is a pool round trip spent, under
load, inside the session's Signal lock, where every other send of the session waits for it.

The cache holds the JSON values as written (the records are rebuilt from them on each read,
so no caller can change a cached value in place), for at most `limit` addresses, least
recently used first out. A value enters it only once the store has it: `set` writes
through first and caches after, and a write that fails drops the addresses it touched, so
a ratchet step that never reached the store is never served from memory.
"""

from __future__ import annotations

from collections import OrderedDict

from wahttp.wa.auth.creds import Creds
from wahttp.wa.auth.store import AuthStore, KeyValue

# Categories read on every message (a 1:1 send reads its privacy token, an inbound message
# its contact's app-state name); the others are rare or bulky (pre-keys).
CACHED = frozenset({"session", "lid-mapping", "tctoken", "app-state-chat"})
DEFAULT_LIMIT = 256
# What the cache remembers for a key the store does not have (most contacts have no token or
# app-state name yet): without it, every message would read the store for them again.
_ABSENT = object()


class KeyCache:
    """An AuthStore that serves recently used session records and LID mappings from memory."""

    def __init__(self, inner: AuthStore, limit: int = DEFAULT_LIMIT) -> None:
        self.inner = inner
        self.limit = limit
        self._values: OrderedDict[tuple[str, str], KeyValue] = OrderedDict()
        # Writes begun, and in flight: a read that overlapped a write is not cached (it may
        # hold what the store had before the write, read after the write cached its value).
        self._writes = 0
        self._writing = 0

    async def load_creds(self) -> Creds | None:
        return await self.inner.load_creds()

    async def save_creds(self, creds: Creds) -> None:
        await self.inner.save_creds(creds)

    async def get(self, category: str, ids: list[str]) -> dict[str, KeyValue]:
        if category not in CACHED:
            return await self.inner.get(category, ids)
        found: dict[str, KeyValue] = {}
        missing: list[str] = []
        for key_id in ids:
            key = (category, key_id)
            if key in self._values:
                self._values.move_to_end(key)
                value = self._values[key]
                if value is not _ABSENT:
                    found[key_id] = value
            else:
                missing.append(key_id)
        if missing:
            writes, quiet = self._writes, not self._writing
            read = await self.inner.get(category, missing)
            if quiet and writes == self._writes:
                for key_id in missing:
                    self._remember((category, key_id), read.get(key_id, _ABSENT))
            found.update(read)
        return found

    async def set(self, changes: dict[str, dict[str, KeyValue | None]]) -> None:
        touched = [(c, i) for c, values in changes.items() if c in CACHED for i in values]
        if touched:
            self._writes += 1
            self._writing += 1
        try:
            await self.inner.set(changes)
        except BaseException:
            for key in touched:
                self._values.pop(key, None)
            raise
        finally:
            if touched:
                self._writing -= 1
        for category, key_id in touched:
            value = changes[category][key_id]
            if value is None:
                self._values.pop((category, key_id), None)
            else:
                self._remember((category, key_id), value)

    async def clear(self) -> None:
        self._values.clear()
        await self.inner.clear()

    async def all_keys(self) -> dict[str, dict[str, KeyValue]]:
        return await self.inner.all_keys()

    def forget(self) -> None:
        """Drop every cached value (the store may have been changed by someone else)."""
        self._values.clear()

    def _remember(self, key: tuple[str, str], value: KeyValue) -> None:
        self._values[key] = value
        self._values.move_to_end(key)
        while len(self._values) > self.limit:
            self._values.popitem(last=False)
