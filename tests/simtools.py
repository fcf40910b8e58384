"""Test helpers: link our client to the simulator and wait for its events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import Client, ClientConfig, Connected, Event, QRCode


@dataclass
class Recorder:
    """Collects a client's events; `next(kind)` returns each event of a kind once, in order,
    without dropping events of other kinds that arrive meanwhile."""

    events: list[Event] = field(default_factory=list)
    _taken: set[int] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def next(self, kind: type[Event], timeout: float = 15.0) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for index, event in enumerate(self.events):
                    if index not in self._taken and isinstance(event, kind):
                        self._taken.add(index)
                        return event
                self._changed.clear()
                await self._changed.wait()

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


@dataclass
class Linked:
    """A client linked to a simulated phone and connected."""

    client: Client
    events: Recorder
    store: MemoryAuthStore
    number: str
    jid: str

    async def reconnect(self, sim: SimHandle) -> None:
        self.client, self.events = client_for(sim, self.store)
        await self.client.connect()
        await self.events.next(Connected)


async def linked_client(sim: SimHandle, admin: httpx.AsyncClient) -> Linked:
    """Link a new client to a new phone by QR and return it connected."""
    store = MemoryAuthStore()
    client, events = client_for(sim, store)
    runner = asyncio.create_task(client.run())
    qr = await events.next(QRCode)
    assert isinstance(qr, QRCode)
    number = await new_phone(admin)
    device = await scan(admin, number, qr.qr)
    await events.next(Connected)
    await client.disconnect()
    await runner
    client, events = client_for(sim, store)
    await client.connect()
    await events.next(Connected)
    return Linked(client, events, store, number, str(device["jid"]))
