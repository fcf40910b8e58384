"""The client's cache of session records in front of its auth store (wa/auth/cache.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wahttp.wa.auth.cache import KeyCache
from wahttp.wa.auth.store import KeyValue, MemoryAuthStore


class CountingStore(MemoryAuthStore):
    """A MemoryAuthStore that counts reads, can hold a read back, and can fail writes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, list[str]]] = []
        self.hold_reads: asyncio.Event | None = None
        self.fail_writes = False

    async def get(self, category: str, ids: list[str]) -> dict[str, KeyValue]:
        self.reads.append((category, list(ids)))
        found = await super().get(category, ids)  # what the store had when the read ran
        if self.hold_reads is not None:
            await self.hold_reads.wait()
        return found

    async def set(self, changes: dict[str, dict[str, Any]]) -> None:
        if self.fail_writes:
            raise OSError("disk full")
        await super().set(changes)


def record(n: int) -> dict[str, Any]:
    return {"_sessions": {}, "version": "v1", "n": n}


async def test_session_records_are_read_from_the_store_once() -> None:
    inner = CountingStore()
    cache = KeyCache(inner)
    await cache.set({"session": {"1.0": record(1)}})
    assert await cache.get("session", ["1.0", "2.0"]) == {"1.0": record(1)}
    assert inner.reads == [("session", ["2.0"])]  # written through: only the unknown is read
    await inner.set({"session": {"3.0": record(3)}})
    assert await cache.get("session", ["3.0"]) == {"3.0": record(3)}
    assert await cache.get("session", ["3.0"]) == {"3.0": record(3)}
    assert inner.reads == [("session", ["2.0"]), ("session", ["3.0"])]


async def test_a_key_the_store_lacks_is_read_once_until_written() -> None:
    inner = CountingStore()
    cache = KeyCache(inner)
    for _ in range(3):  # a contact with no privacy token: one read, not one per message
        assert await cache.get("tctoken", ["1@lid"]) == {}
    assert inner.reads == [("tctoken", ["1@lid"])]
    await cache.set({"tctoken": {"1@lid": {"token": b"t"}}})
    assert await cache.get("tctoken", ["1@lid"]) == {"1@lid": {"token": b"t"}}
    await cache.set({"tctoken": {"1@lid": None}})
    assert await cache.get("tctoken", ["1@lid"]) == {}
    assert inner.reads == [("tctoken", ["1@lid"]), ("tctoken", ["1@lid"])]


async def test_a_miss_overlapping_a_write_is_not_cached() -> None:
    inner = CountingStore()
    cache = KeyCache(inner)
    inner.hold_reads = asyncio.Event()
    read = asyncio.create_task(cache.get("app-state-chat", ["a@s.whatsapp.net"]))
    await asyncio.sleep(0)
    await cache.set({"app-state-chat": {"a@s.whatsapp.net": {"name": "Ann"}}})
    inner.hold_reads.set()
    assert await read == {}  # what it read then
    inner.hold_reads = None
    assert await cache.get("app-state-chat", ["a@s.whatsapp.net"]) == {
        "a@s.whatsapp.net": {"name": "Ann"}
    }


async def test_other_categories_always_come_from_the_store() -> None:
    inner = CountingStore()
    cache = KeyCache(inner)
    await cache.set({"pre-key": {"1": {"n": 1}}})
    await inner.set({"pre-key": {"1": None}})  # used elsewhere
    assert await cache.get("pre-key", ["1"]) == {}


async def test_a_failed_write_is_never_served() -> None:
    inner = CountingStore()
    cache = KeyCache(inner)
    await cache.set({"session": {"1.0": record(1)}})
    inner.fail_writes = True
    with pytest.raises(OSError):
        await cache.set({"session": {"1.0": record(2)}})
    inner.fail_writes = False
    assert await cache.get("session", ["1.0"]) == {"1.0": record(1)}
    assert inner.reads == [("session", ["1.0"])]  # dropped, then read back from the store


async def test_deletes_pass_through() -> None:
    inner = CountingStore()
    cache = KeyCache(inner)
    await cache.set({"session": {"1.0": record(1)}})
    await cache.set({"session": {"1.0": None}})
    assert await cache.get("session", ["1.0"]) == {}
    assert await inner.get("session", ["1.0"]) == {}


async def test_a_read_overlapping_a_write_is_not_cached() -> None:
    # The read saw the store before the write; were it cached after the write cached the new
    # value, an old ratchet state would be served (keys used twice).
    inner = CountingStore()
    cache = KeyCache(inner)
    await inner.set({"session": {"1.0": record(1)}})
    inner.hold_reads = asyncio.Event()
    read = asyncio.create_task(cache.get("session", ["1.0"]))
    await asyncio.sleep(0)
    await cache.set({"session": {"1.0": record(2)}})
    inner.hold_reads.set()
    assert await read == {"1.0": record(1)}  # what it read then
    inner.hold_reads = None
    assert await cache.get("session", ["1.0"]) == {"1.0": record(2)}


async def test_least_recently_used_records_leave_first() -> None:
    inner = CountingStore()
    cache = KeyCache(inner, limit=2)
    await cache.set({"session": {"1.0": record(1), "2.0": record(2)}})
    await cache.get("session", ["1.0"])  # 2.0 is now the oldest
    await cache.set({"session": {"3.0": record(3)}})
    inner.reads.clear()
    await cache.get("session", ["1.0", "2.0", "3.0"])
    assert inner.reads == [("session", ["2.0"])]


async def test_forget_and_clear() -> None:
    inner = CountingStore()
    cache = KeyCache(inner)
    await cache.set({"session": {"1.0": record(1)}})
    await inner.set({"session": {"1.0": record(5)}})  # changed behind its back
    cache.forget()
    assert await cache.get("session", ["1.0"]) == {"1.0": record(5)}
    await cache.clear()
    assert await cache.get("session", ["1.0"]) == {}
    assert await inner.all_keys() == {}
