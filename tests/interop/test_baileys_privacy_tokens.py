"""Unmodified Baileys 7 against the simulator's privacy tokens (AB prop 10518 on, the default):
it stores the token a simulated phone issued (in its own `tctoken` layout), attaches it to its
1:1 send, which the simulator then accepts; after a stranger's 463 it issues its own token to
recover, as the real network expects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from baileys_tools import Baileys, link_baileys_by_code
from simtools import new_phone

from wahttp.sim.runner import SimHandle

pytestmark = pytest.mark.interop


async def _until_file(path: Path, timeout: float = 30.0) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(path.exists):
            await asyncio.sleep(0.1)
    data: dict[str, object] = json.loads(await asyncio.to_thread(path.read_text))
    return data


async def test_baileys_attaches_the_token_the_simulator_issued(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    tokens = sim.server.network.privacy
    assert tokens.enforced
    theirs = await new_phone(admin)
    friend = await new_phone(admin)
    stranger = (await admin.post("/phones", json={"trusting": False})).json()["number"]
    auth = tmp_path / "baileys"
    await link_baileys_by_code(sim, admin, auth, theirs)
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        # The friend's phone issues its token to Baileys' account: a privacy_token notification.
        issued = await admin.post(f"/phones/{friend}/privacy-tokens", json={"to": theirs})
        assert issued.status_code == 201
        friend_lid = str(sim.server.network.accounts[friend].phone.lid)
        stored = await _until_file(auth / f"tctoken-{friend_lid}.json")
        assert stored["token"] and stored["timestamp"]

        await baileys.command(cmd="send", to=f"{friend}@s.whatsapp.net", text="with token")
        async with asyncio.timeout(30):
            while tokens.accepted_with_token < 1:
                await asyncio.sleep(0.05)
            while "with token" not in [
                m["text"]
                for m in (await admin.get(f"/phones/{friend}/messages")).json()["received"]
            ]:
                await asyncio.sleep(0.05)
        assert tokens.refused == []
        # After sending, Baileys issued its own token to the friend (privacy set iq).
        async with asyncio.timeout(30):
            while (theirs, friend) not in tokens.issued:
                await asyncio.sleep(0.05)

        # A stranger refuses a message without its token: 463; Baileys' handleBadAck then
        # issues its token to the stranger (its recovery) and does not resend.
        await baileys.command(
            cmd="send", to=f"{stranger}@s.whatsapp.net", text="hello?", ref="stranger"
        )
        while (await baileys.next("sent"))["ref"] != "stranger":
            pass
        assert tokens.refused == [(theirs, stranger, 463)]
        async with asyncio.timeout(30):
            while (theirs, stranger) not in tokens.issued:
                await asyncio.sleep(0.05)
        inbox = (await admin.get(f"/phones/{stranger}/messages")).json()["received"]
        assert inbox == []
    finally:
        await baileys.stop()
