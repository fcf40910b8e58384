"""Unmodified Baileys 7 against the simulator's privacy-token upkeep: it stores the tokens the
initial history sync carries (with our issue time, which only the history has), sends its
stored props hash (answered "unchanged"), and prunes expired tokens when it goes online exactly
as wahttp's `tctoken.prune` does, file for file."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from baileys_tools import Baileys, link_baileys_by_code
from simtools import new_phone

from wahttp.sim.runner import SimHandle
from wahttp.wa.auth.bufferjson import js_json_loads
from wahttp.wa.auth.multifile import read_folder, write_folder
from wahttp.wa.auth.store import MemoryAuthStore
from wahttp.wa.client import tctoken
from wahttp.wa.client.tctoken import TcToken

pytestmark = pytest.mark.interop


async def _until_file(path: Path, timeout: float = 30.0) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(path.exists):
            await asyncio.sleep(0.1)
    data: dict[str, object] = js_json_loads(await asyncio.to_thread(path.read_text))
    return data


async def test_baileys_takes_the_history_syncs_tokens_and_sends_its_props_hash(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    tokens = sim.server.network.privacy
    ours, friend = await new_phone(admin), await new_phone(admin)
    # Before Baileys is linked: the friend issues its token to us, and we ours to the friend.
    for issuer, holder in ((friend, ours), (ours, friend)):
        resp = await admin.post(f"/phones/{issuer}/privacy-tokens", json={"to": holder})
        assert resp.status_code == 201
    auth = tmp_path / "baileys"
    # Paired by code and left running, as an app does: the phone's key share and initial
    # history sync reach the socket that opens after pairing.
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth, "--pair-number", ours)
    try:
        code = (await baileys.next("pairing-code"))["code"]
        resp = await admin.post(f"/phones/{ours}/pairing-code", json={"code": code})
        assert resp.status_code == 200, resp.text
        await baileys.next("open")
        friend_lid = str(sim.server.network.accounts[friend].phone.lid)
        stored = await _until_file(auth / f"tctoken-{friend_lid}.json")
        t, token = tokens.token_for(friend, ours) or (0, b"")
        assert stored == {
            "token": token,
            "timestamp": str(t),
            "senderTimestamp": tokens.issued[(ours, friend)],  # only the history carries it
        }
        index = await _until_file(auth / "tctoken-__index.json")
        assert index == {"token": json.dumps([friend_lid]).encode()}
    finally:
        await baileys.stop()
    served_before = len([n for n, _, _ in tokens.props_served if n == ours])
    assert served_before >= 1  # Baileys fetched the props when it opened

    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        # Its props query carried the hash it stored: answered without props.
        async with asyncio.timeout(30):
            while len([n for n, _, _ in tokens.props_served if n == ours]) == served_before:
                await asyncio.sleep(0.05)
        assert [u for n, _, u in tokens.props_served if n == ours][served_before] is True

        # The history's token goes on its first send, which the simulator accepts.
        await baileys.command(cmd="send", to=f"{friend}@s.whatsapp.net", text="via history")
        async with asyncio.timeout(30):
            while tokens.accepted_with_token < 1:
                await asyncio.sleep(0.05)
        assert tokens.refused == []
    finally:
        await baileys.stop()


def _tctoken_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("tctoken-*.json"))}


async def test_baileys_prunes_expired_tokens_as_we_do(
    sim: SimHandle, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    ours = await new_phone(admin)
    auth = tmp_path / "baileys"
    await link_baileys_by_code(sim, admin, auth, ours)
    now = int(time.time())
    dead = str(tctoken.cutoff(now) - 10)
    entries = {
        "111@lid": TcToken(b"dead token", dead).to_json(),  # nothing left: deleted
        "222@lid": TcToken(b"dead token", dead, now - 60).to_json(),  # our issue time lives
        "333@lid": TcToken(b"live token", str(now - 60)).to_json(),  # kept as it is
    }
    index = {"token": json.dumps(["111@lid", "222@lid", "333@lid", "444@lid"]).encode()}
    state = read_folder(auth)
    creds = dict(state.creds_json)
    creds["me"] = {**creds["me"], "name": "Upkeep"}  # Baileys goes online only with a name
    write_folder(auth, creds, {"tctoken": {**entries, "__index": index}})

    # What wahttp makes of the same store.
    ours_store = MemoryAuthStore()
    await ours_store.set({"tctoken": {**entries, "__index": index}})
    result = await tctoken.prune(ours_store, now)
    assert result.removed == ["111@lid"] and result.cleared == ["222@lid"]
    expected = tmp_path / "ours"
    write_folder(expected, None, (await ours_store.all_keys()))

    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth)
    try:
        await baileys.next("open")
        await baileys.command(cmd="presence", type="available")
        await baileys.next("presence-sent")
        async with asyncio.timeout(30):
            while _tctoken_files(auth) != _tctoken_files(expected):
                await asyncio.sleep(0.1)
    finally:
        await baileys.stop()
    # Byte for byte: the same files deleted, rewritten and kept, the same index.
    assert _tctoken_files(auth) == _tctoken_files(expected)
    assert js_json_loads((auth / "tctoken-__index.json").read_text()) == {
        "token": b'["222@lid","333@lid"]'
    }
