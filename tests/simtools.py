"""Test helpers: link our client to the simulator and wait for its events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import Client, ClientConfig, Event


@dataclass
class Recorder:
    """Collects a client's events and lets a test wait for the next one of a kind."""

    events: list[Event] = field(default_factory=list)
    _queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._queue.put_nowait(event)

    async def next(self, kind: type[Event], timeout: float = 15.0) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                event = await self._queue.get()
                if isinstance(event, kind):
                    return event

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def client_for(
    sim: SimHandle, store: MemoryAuthStore | None = None, **config: object
) -> tuple[Client, Recorder]:
    cfg = ClientConfig.from_env(sim.env())
    for key, value in config.items():
        setattr(cfg, key, value)
    client = Client(store or MemoryAuthStore(), cfg, session_id="test")
    recorder = Recorder()
    client.add_event_handler(recorder)
    return client, recorder


async def new_phone(admin: httpx.AsyncClient, number: str | None = None) -> str:
    resp = await admin.post("/phones", json={"number": number} if number else {})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["number"])


async def scan(admin: httpx.AsyncClient, number: str, qr: str) -> dict[str, object]:
    resp = await admin.post(f"/phones/{number}/scan", json={"qr": qr})
    assert resp.status_code == 200, resp.text
    data: dict[str, object] = resp.json()
    return data
