"""Users of the Node.js original switch without re-pairing: Baileys folders and auth_json rows
are picked up by wahttp, and wahttp's export is loaded by Baileys' useMultiFileAuthState."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import asyncpg
import httpx
import pytest
from baileys_tools import Baileys, link_baileys_by_code
from dbtools import read_auth_folder
from servicetools import Service, service_settings, wait_status
from simtools import new_phone

from wahttp.server.auth_cli import run_auth_command
from wahttp.sim.runner import SimHandle

pytestmark = pytest.mark.interop

# The original's db.js DDL, as a Node.js deployment has it.
ORIGINAL_DDL = """CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, auth_json JSONB,
  created_at TIMESTAMP DEFAULT NOW(), updated_at TIMESTAMP DEFAULT NOW())"""


async def _device_connected(admin: httpx.AsyncClient, number: str) -> bool:
    phone = (await admin.get(f"/phones/{number}")).json()
    return bool(phone["devices"]) and bool(phone["devices"][0]["connected"])


async def test_baileys_folder_imported_logs_in_and_export_loads_in_baileys(
    sim: SimHandle, admin: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    number = await new_phone(admin)
    baileys_dir = tmp_path / "from-baileys"
    device = await link_baileys_by_code(sim, admin, baileys_dir, number)

    settings = service_settings(sim, database_url, tmp_path)
    args = argparse.Namespace(auth_command="import", folder=baileys_dir, id="moved")
    assert await run_auth_command(args, settings) == 0
    assert (tmp_path / "auth_sessions" / "moved" / "creds.json").exists()  # mirrored

    service = Service(settings)
    await service.start()
    try:
        async with service.http() as api:
            status = await wait_status(api, "moved", "open")
            assert status["jid"] == device["jid"]  # no re-pairing: the same linked device
            assert await _device_connected(admin, number)
    finally:
        await service.stop()

    exported = tmp_path / "exported"
    args = argparse.Namespace(auth_command="export", session_id="moved", folder=exported)
    assert await run_auth_command(args, settings) == 0
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, exported)
    try:
        event = await baileys.next("open", "qr", "close")
        assert event["event"] == "open", event
        assert event["me"]["id"] == device["jid"]
    finally:
        await baileys.stop()


async def test_session_linked_by_wahttp_exports_to_baileys(
    sim: SimHandle, admin: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    settings = service_settings(sim, database_url, tmp_path)
    service = Service(settings)
    await service.start()
    number = await new_phone(admin)
    try:
        async with service.http() as api:
            assert (await api.post("/sessions", json={"id": "ours"})).status_code == 201
            code = (await api.post("/sessions/ours/pair-request", json={"number": number})).json()
            resp = await admin.post(
                f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]}
            )
            assert resp.status_code == 200
            jid = (await wait_status(api, "ours", "open"))["jid"]
    finally:
        await service.stop()
    # The mirrored folder is already a Baileys folder; so is an explicit export.
    for folder in (tmp_path / "auth_sessions" / "ours", tmp_path / "export"):
        if folder.name == "export":
            args = argparse.Namespace(auth_command="export", session_id="ours", folder=folder)
            assert await run_auth_command(args, settings) == 0
        baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, folder)
        try:
            event = await baileys.next("open", "qr", "close")
            assert event["event"] == "open" and event["me"]["id"] == jid, event
        finally:
            await baileys.stop()


async def test_original_database_row_is_picked_up_at_start(
    sim: SimHandle, admin: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    number = await new_phone(admin)
    folder = tmp_path / "node-service" / "auth_sessions" / "legacy"
    device = await link_baileys_by_code(sim, admin, folder, number)
    auth_json = read_auth_folder(folder)
    assert "creds.json" in auth_json and any(k.startswith("pre-key-") for k in auth_json)

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(ORIGINAL_DDL)
        await conn.execute(
            "INSERT INTO sessions (id, auth_json) VALUES ($1, $2::jsonb)",
            "legacy",
            json.dumps(auth_json),
        )
    finally:
        await conn.close()

    service = Service(service_settings(sim, database_url, tmp_path))
    await service.start()
    try:
        async with service.http() as api:
            listed = (await api.get("/sessions")).json()
            assert [s["id"] for s in listed] == ["legacy"]
            status = await wait_status(api, "legacy", "open")
            assert status["jid"] == device["jid"]
            assert await _device_connected(admin, number)
    finally:
        await service.stop()
