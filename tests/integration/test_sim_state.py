"""`start_sim(state_file=...)` (wahttp sim --state-file): the sandbox survives a real restart
with its keys, accounts, devices, the phones' Signal sessions and undelivered stanzas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from simtools import client_for, linked_client, new_phone

from wahttp.sim.runner import start_sim
from wahttp.sim.state import StateError, read_state
from wahttp.wa.client import Connected, MessageReceived
from wahttp.wa.jid import Jid


async def _inbox(admin: httpx.AsyncClient, number: str) -> dict[str, Any]:
    data: dict[str, Any] = (await admin.get(f"/phones/{number}/messages")).json()
    return data


async def test_state_file_keeps_the_network_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sim-state.json"
    sim = await start_sim(state_file=path)
    try:
        async with httpx.AsyncClient(base_url=sim.admin_url) as admin:
            a = await linked_client(sim, admin)
            friend = await new_phone(admin)
            hello = {"to": a.number, "text": "hello"}
            assert (await admin.post(f"/phones/{friend}/messages", json=hello)).status_code == 201
            got = await a.events.next(MessageReceived)
            assert isinstance(got, MessageReceived) and got.text == "hello"
            await a.client.send_text(Jid(friend, "s.whatsapp.net"), "hi phone")
            await a.client.disconnect()
            # Queued for the offline device when the simulator goes down.
            later = {"to": a.number, "text": "while you were away"}
            assert (await admin.post(f"/phones/{friend}/messages", json=later)).status_code == 201
            phones_before = (await admin.get("/phones")).json()
            root_key = sim.root_key_b64
    finally:
        await sim.stop()
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    sim = await start_sim(state_file=path)
    try:
        assert sim.root_key_b64 == root_key  # clients that pinned it still connect
        async with httpx.AsyncClient(base_url=sim.admin_url) as admin:
            phones = (await admin.get("/phones")).json()
            for phone in phones:
                for device in phone["devices"]:
                    device["connected"] = False
            for phone in phones_before:
                for device in phone["devices"]:
                    device["connected"] = False
            assert phones == phones_before
            assert [m["text"] for m in (await _inbox(admin, friend))["received"]] == ["hi phone"]

            client, events = client_for(sim, a.store)
            await client.connect()
            await events.next(Connected)
            got = await events.next(MessageReceived)
            assert isinstance(got, MessageReceived) and got.text == "while you were away"
            # Both Signal sides kept their sessions: replies decrypt both ways.
            await client.send_text(Jid(friend, "s.whatsapp.net"), "back again")
            reply = {"to": a.number, "text": "welcome back"}
            assert (await admin.post(f"/phones/{friend}/messages", json=reply)).status_code == 201
            got = await events.next(MessageReceived)
            assert isinstance(got, MessageReceived) and got.text == "welcome back"
            inbox = await _inbox(admin, friend)
            assert [m["text"] for m in inbox["received"]] == ["hi phone", "back again"]
            assert inbox["undecryptable"] == 0
            # The device's uploaded pre-keys were kept: a new phone starts a session with it.
            stranger = await new_phone(admin)
            first = {"to": a.number, "text": "new contact"}
            assert (await admin.post(f"/phones/{stranger}/messages", json=first)).status_code == 201
            got = await events.next(MessageReceived)
            assert isinstance(got, MessageReceived) and got.text == "new contact"
            saved = (await admin.post("/state/save")).json()
            assert saved == {"saved": str(path)}
            await client.disconnect()
    finally:
        await sim.stop()
    state = read_state(path)
    assert state is not None and len(state["accounts"]) == 3


async def test_state_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(StateError):
        await start_sim(state_file=path)
    path.write_text("{not json")
    with pytest.raises(StateError):
        await start_sim(state_file=path)
    sim = await start_sim()
    try:
        async with httpx.AsyncClient(base_url=sim.admin_url) as admin:
            assert (await admin.post("/state/save")).status_code == 409
    finally:
        await sim.stop()
