"""Baileys, the reference client, links to our simulator by QR and logs straight in afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from baileys_tools import Baileys
from simtools import new_phone, scan

from wahttp.sim.runner import SimHandle

pytestmark = pytest.mark.interop


async def test_baileys_links_by_qr_and_relogs(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    number = await new_phone(admin)
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, tmp_path)
    try:
        qr = await baileys.next("qr")
        device = await scan(admin, number, qr["qr"])
        paired = await baileys.next("paired")
        assert paired["me"]["id"] == device["jid"]
        closed = await baileys.next("close")
        assert closed["code"] == 515  # the restart after pairing
        opened = await baileys.next("open")
        assert opened["me"]["id"] == device["jid"]
    finally:
        await baileys.stop()
    creds = json.loads((tmp_path / "creds.json").read_text())
    assert creds["me"]["id"] == device["jid"]
    assert creds["account"]["deviceSignature"]
    phone = (await admin.get(f"/phones/{number}")).json()
    assert phone["devices"][0]["pre_keys"] > 0  # Baileys uploaded its pre-keys to us

    again = await Baileys.start(sim.ws_url, sim.root_key_b64, tmp_path)
    try:
        event = await again.next("open", "qr", "close")
        assert event["event"] == "open", event
        assert not [e for e in again.events if e["event"] == "qr"]
    finally:
        await again.stop()
