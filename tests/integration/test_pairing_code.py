"""Linking by pairing code: our client asks for a code, the simulated phone types it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from simtools import client_for, new_phone

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import Connected, PairSuccess, QRCode
from wahttp.wa.client.pair_code import CROCKFORD, crockford, normalize_number


async def test_links_by_pairing_code_and_relogs(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    number = await new_phone(admin)
    store = MemoryAuthStore()
    client, events = client_for(sim, store)
    runner = asyncio.create_task(client.run())
    await events.next(QRCode)  # the stream is open and registering
    code = await client.request_pairing_code("+" + number)
    assert len(code) == 8 and set(code) <= set(CROCKFORD)

    wrong = "".join(reversed(code)) if code != code[::-1] else "AAAAAAAA"
    resp = await admin.post(f"/phones/{number}/pairing-code", json={"code": wrong})
    assert resp.status_code == 400 and "wrong pairing code" in resp.json()["error"]["message"]

    resp = await admin.post(
        f"/phones/{number}/pairing-code", json={"code": code[:4] + "-" + code[4:]}
    )
    assert resp.status_code == 200, resp.text
    device = resp.json()
    connected = await events.next(Connected)
    assert isinstance(connected, Connected) and connected.jid == device["jid"]
    paired = events.of(PairSuccess)
    assert len(paired) == 1
    await client.disconnect()
    await runner

    again, events2 = client_for(sim, store)
    await again.connect()
    await events2.next(Connected)
    assert not events2.of(QRCode)
    await again.disconnect()


async def test_code_for_a_number_nobody_waits_for(sim: SimHandle, admin: httpx.AsyncClient) -> None:
    number = await new_phone(admin)
    resp = await admin.post(f"/phones/{number}/pairing-code", json={"code": "ABCDEFGH"})
    assert resp.status_code == 404


def test_crockford_matches_known_values() -> None:
    assert crockford(b"\x00\x00\x00\x00\x00") == "11111111"
    assert crockford(b"\xff\xff\xff\xff\xff") == "ZZZZZZZZ"
    assert crockford(b"\x08\x42\x10\x84\x21") == "22222222"


@pytest.mark.parametrize(
    ("raw", "digits"),
    [("+1 (555) 123-4567", "15551234567"), ("447911123456", "447911123456")],
)
def test_numbers_are_normalized(raw: str, digits: str) -> None:
    assert normalize_number(raw) == digits


@pytest.mark.parametrize(
    "raw",
    [
        *("", "+", "12ab", "0123456789", "123", "1" * 16, "1555\x001234567"),
        "1" + "".join(chr(0x0660 + int(d)) for d in "5551234567"),  # not ASCII digits
    ],
)
def test_implausible_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_number(raw)
