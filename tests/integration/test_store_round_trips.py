"""Auth-store calls per message stay constant (issue 6: no per-message cost that grows).

Once a chat is warm (Signal sessions, device lists, PN->LID mappings known), sending a text to
a phone (encrypted for its phone and for our own phone) costs one atomic write of the ratchets
and no read (the client keeps the session records it wrote, wa/auth/cache.py), and so does
receiving one; nothing is read again per device.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from simtools import linked_client, new_phone

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import Client, MessageReceived, tctoken
from wahttp.wa.jid import Jid


def _count_calls(store: MemoryAuthStore) -> Counter[str]:
    calls: Counter[str] = Counter()
    get, set_ = store.get, store.set

    async def counted_get(category: str, ids: list[str]) -> dict[str, Any]:
        calls[f"get {category}"] += 1
        return await get(category, ids)

    async def counted_set(changes: dict[str, dict[str, Any]]) -> None:
        calls[f"set {','.join(sorted(changes))}"] += 1
        await set_(changes)

    store.get = counted_get  # type: ignore[method-assign]
    store.set = counted_set  # type: ignore[method-assign]
    return calls


async def _privacy_tokens_settled(client: Client, to: Jid) -> None:
    """The first contact's one-off writes done: the friend's token (its notification) and ours
    issued in the background after the first send (its senderTimestamp)."""
    key = await tctoken.storage_key(client, to)
    async with asyncio.timeout(10):
        while True:
            entry = await tctoken.load(client.store, key)
            settled = entry is not None and entry.usable() and entry.sender_timestamp is not None
            if settled and not client.tc_issuing:
                return
            await asyncio.sleep(0.05)


async def test_one_read_and_one_write_per_message(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    a = await linked_client(sim, admin)
    friend = await new_phone(admin)
    to = Jid(friend, "s.whatsapp.net")
    await a.client.send_text(to, "warm-up")
    await _privacy_tokens_settled(a.client, to)  # once per contact and bucket, not per message
    calls = _count_calls(a.store)

    for i in range(5):
        await a.client.send_text(to, f"out {i}")
    assert calls == {"set session": 5}

    calls.clear()
    for i in range(5):
        resp = await admin.post(
            f"/phones/{friend}/messages", json={"to": a.number, "text": f"in {i}"}
        )
        assert resp.status_code == 201, resp.text
    for _ in range(5):
        await a.events.next(MessageReceived)
    async with asyncio.timeout(10):  # the ratchet is saved just after the hand-over
        while calls["set session"] < 5:
            await asyncio.sleep(0.02)
    # The first message from the friend looks its app-state name up once (none: remembered).
    assert calls == {"set session": 5, "get app-state-chat": 1}
    await a.client.disconnect()
