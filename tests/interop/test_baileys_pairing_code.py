"""Baileys links to our simulator with a pairing code (its requestPairingCode), then relogs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from baileys_tools import Baileys, link_baileys_by_code
from simtools import new_phone

from wahttp.sim.runner import SimHandle

pytestmark = pytest.mark.interop


async def test_baileys_links_by_pairing_code(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    number = await new_phone(admin)
    device = await link_baileys_by_code(sim, admin, tmp_path, number)
    creds = json.loads((tmp_path / "creds.json").read_text())
    assert creds["me"]["id"] == device["jid"] and creds["registered"] is True

    again = await Baileys.start(sim.ws_url, sim.root_key_b64, tmp_path)
    try:
        event = await again.next("open", "qr", "close")
        assert event["event"] == "open", event
    finally:
        await again.stop()


async def test_baileys_wrong_code_is_refused_then_right_code_links(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    number = await new_phone(admin)
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, tmp_path, "--pair-number", number)
    try:
        code = (await baileys.next("pairing-code"))["code"]
        wrong = "".join(reversed(code)) if code != code[::-1] else "AAAAAAAA"
        resp = await admin.post(f"/phones/{number}/pairing-code", json={"code": wrong})
        assert resp.status_code == 400
        resp = await admin.post(f"/phones/{number}/pairing-code", json={"code": code})
        assert resp.status_code == 200, resp.text
        await baileys.next("open")
    finally:
        await baileys.stop()
