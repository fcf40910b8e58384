"""Crash safety in the client: what a later message depends on is durable before it matters."""

from __future__ import annotations

import httpx
from simtools import linked_client

from wahttp.sim.runner import SimHandle
from wahttp.wa.client import MessageReceived, UndecryptableMessage
from wahttp.wa.client.events import Event
from wahttp.wa.jid import Jid


async def test_a_message_not_handed_over_is_redelivered_and_still_decrypts(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    b = await linked_client(sim, admin)
    failures = []

    async def outbox_down(event: Event) -> None:
        if isinstance(event, MessageReceived):
            failures.append(event.id)
            raise RuntimeError("the outbox is unavailable")

    b.client.add_event_handler(outbox_down)
    sent = await a.client.send_text(Jid(b.number, "s.whatsapp.net"), "keep me")
    await b.events.next(MessageReceived)  # seen, but the hand-over failed: no receipt, no save
    assert failures == [sent.id]
    await b.client.disconnect()
    await b.reconnect(sim)  # the server redelivers the unacked stanza
    again = await b.events.next(MessageReceived)
    assert isinstance(again, MessageReceived) and again.id == sent.id and again.text == "keep me"
    await a.client.disconnect()
    await b.client.disconnect()


class DictSentStore:
    def __init__(self) -> None:
        self.saved: dict[str, tuple[str, bytes]] = {}

    async def save_sent(self, message_id: str, chat: str, payload: bytes) -> None:
        self.saved[message_id] = (chat, payload)

    async def load_sent(self, message_id: str) -> tuple[str, bytes] | None:
        return self.saved.get(message_id)


async def test_retry_receipts_are_answered_after_a_restart(
    sim: SimHandle, admin: httpx.AsyncClient
) -> None:
    a = await linked_client(sim, admin)
    b = await linked_client(sim, admin)
    store = DictSentStore()
    a.client.sent_store = store
    await a.client.send_text(Jid(b.number, "s.whatsapp.net"), "first")
    await b.events.next(MessageReceived)
    await b.client.send_text(Jid(a.number, "s.whatsapp.net"), "reply")
    await a.events.next(MessageReceived)
    sessions = (await b.store.all_keys()).get("session", {})
    await b.store.set({"session": dict.fromkeys(sessions)})
    await b.client.disconnect()  # b is away; a's message waits at the server
    sent = await a.client.send_text(Jid(b.number, "s.whatsapp.net"), "second")
    assert sent.id in store.saved  # durable before it left
    a.client.recent_sent.clear()  # as after a restart: only the durable copy is left
    await b.reconnect(sim)
    failed = await b.events.next(UndecryptableMessage)
    assert isinstance(failed, UndecryptableMessage) and failed.id == sent.id
    recovered = await b.events.next(MessageReceived)
    assert isinstance(recovered, MessageReceived) and recovered.text == "second"
    await a.client.disconnect()
    await b.client.disconnect()
