"""The REST service end to end against the simulator: the original's flow, restarts, bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from servicetools import Service, running, service_settings, wait_status
from simtools import new_phone

from wahttp.sim.runner import SimHandle


async def pair(api: httpx.AsyncClient, admin: httpx.AsyncClient, session_id: str) -> str:
    """Link a session by pairing code with a new simulated phone; returns the phone number."""
    number = await new_phone(admin)
    resp = await api.post(f"/sessions/{session_id}/pair-request", json={"number": f"+{number}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True and len(body["pairingCode"]) == 8
    assert body["message"] == "Enter this code in WhatsApp to pair your device"
    entered = await admin.post(f"/phones/{number}/pairing-code", json={"code": body["pairingCode"]})
    assert entered.status_code == 200, entered.text
    await wait_status(api, session_id, "open")
    return number


async def test_the_original_flow_survives_a_restart_and_delete(
    service: Service, api: httpx.AsyncClient, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = await api.post("/sessions", headers={"Content-Type": "application/json"})
    assert created.status_code == 201
    session_id = created.json()["id"]
    listed = (await api.get("/sessions")).json()
    assert [s["id"] for s in listed] == [session_id]
    assert {"created_at", "updated_at", "status"} <= set(listed[0])

    number = await pair(api, admin, session_id)
    status = await wait_status(api, session_id, "open")
    assert status["linked"] is True and status["jid"].startswith(number + ":")
    assert (tmp_path / "auth_sessions" / session_id / "creds.json").exists()

    await service.restart()
    status = await wait_status(api, session_id, "open")
    assert status["jid"].startswith(number + ":")
    phone = (await admin.get(f"/phones/{number}")).json()
    assert len(phone["devices"]) == 1 and phone["devices"][0]["connected"]

    deleted = await api.delete(f"/sessions/{session_id}")
    assert deleted.status_code == 200 and deleted.json() == {"success": True, "id": session_id}
    assert (await api.get("/sessions")).json() == []
    assert (await api.get(f"/sessions/{session_id}/status")).status_code == 404
    assert not (tmp_path / "auth_sessions" / session_id).exists()
    phone = (await admin.get(f"/phones/{number}")).json()
    assert phone["devices"] == []  # the phone shows the device unlinked


async def test_qr_endpoint_json_and_png(api: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    resp = await api.post("/sessions", json={"id": "qr-user", "pushName": "Desk"})
    session_id = resp.json()["id"]
    assert session_id == "qr-user"
    qr = (await api.get(f"/sessions/{session_id}/qr")).json()["qr"]
    png = await api.get(f"/sessions/{session_id}/qr", params={"format": "png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    number = await new_phone(admin)
    assert (await admin.post(f"/phones/{number}/scan", json={"qr": qr})).status_code == 200
    await wait_status(api, session_id, "open")
    phone = (await admin.get(f"/phones/{number}")).json()
    assert phone["devices"][0]["push_name"] == "Desk"  # announced at login
    resp = await api.get(f"/sessions/{session_id}/qr")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "already_linked"


async def test_ten_sessions_link_and_all_reconnect_after_drops(
    api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    ids = [f"s{i}" for i in range(10)]
    for session_id in ids:
        assert (await api.post("/sessions", json={"id": session_id})).status_code == 201
    await asyncio.gather(*(pair(api, admin, s) for s in ids))
    dropped = (await admin.post("/connections/drop-all")).json()["dropped"]
    assert dropped == 10
    for session_id in ids:
        status = await wait_status(api, session_id, "open")
        assert status["last_disconnect"]["code"] == 428
    connections = (await admin.get("/connections")).json()
    assert len(connections) == 10


async def test_phone_unlinking_removes_the_session(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    session_id = (await api.post("/sessions", json={"id": "bye"})).json()["id"]
    number = await pair(api, admin, session_id)
    phone = (await admin.get(f"/phones/{number}")).json()
    device_id = phone["devices"][0]["device_id"]
    assert (await admin.delete(f"/phones/{number}/devices/{device_id}")).status_code == 204
    async with asyncio.timeout(10):
        while (await api.get(f"/sessions/{session_id}/status")).status_code != 404:
            await asyncio.sleep(0.05)
    assert (await api.get("/sessions")).json() == []
    assert not (tmp_path / "auth_sessions" / session_id).exists()


async def test_bad_input_gets_clear_errors_and_changes_nothing(
    api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    resp = await api.post(
        "/sessions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]["message"]
    for bad_id in ("../etc", "a/b", "", "..", "x" * 65, "a b"):
        resp = await api.post("/sessions", json={"id": bad_id})
        assert resp.status_code == 400, bad_id
    resp = await api.post("/sessions", json={"webhookUrl": "ftp://example.test/hook"})
    assert resp.status_code == 400 and "http" in resp.json()["error"]["message"]
    assert (await api.get("/sessions")).json() == []

    assert (await api.post("/sessions", json={"id": "alice"})).status_code == 201
    resp = await api.post("/sessions", json={"id": "alice"})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "session_exists"
    for bad_number in ("12ab", "123", "+0123456789", ""):
        resp = await api.post("/sessions/alice/pair-request", json={"number": bad_number})
        assert resp.status_code == 400, bad_number
        assert resp.json()["error"]["message"]
    resp = await api.post("/sessions/alice/pair-request", json={})
    assert resp.status_code == 400 and "number" in resp.json()["error"]["message"]
    resp = await api.post("/sessions/nobody/pair-request", json={"number": "+15551234567"})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "session_not_found"
    for path in ("/sessions/a%20b/status", "/sessions/..%2Fetc/status", "/sessions/%2E%2E/qr"):
        resp = await api.get(path)
        assert resp.status_code in (400, 404), path
        assert "error" in resp.json()
    assert (await api.delete("/sessions/nobody")).status_code == 404

    await pair(api, admin, "alice")
    resp = await api.post("/sessions/alice/pair-request", json={"number": "+15551234567"})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "already_linked"
    assert [s["id"] for s in (await api.get("/sessions")).json()] == ["alice"]


async def test_health_reports_database_and_sessions(api: httpx.AsyncClient) -> None:
    body = (await api.get("/health")).json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["sessions"]["total"] == 0 and body["timestamp"]
    docs = await api.get("/openapi.json")
    paths = docs.json()["paths"]
    assert "/sessions/{session_id}/pair-request" in paths and "/health" in paths


async def test_a_dead_link_is_not_reported_open(
    sim: SimHandle, database_url: str, tmp_path: Path, admin: httpx.AsyncClient
) -> None:
    settings = service_settings(
        sim, database_url, tmp_path, WAHTTP_KEEPALIVE_INTERVAL=0.2, WAHTTP_KEEPALIVE_GRACE=0.3
    )
    svc = Service(settings)
    await svc.start()
    try:
        async with svc.http() as api:
            assert (await api.post("/sessions", json={"id": "live"})).status_code == 201
            number = await pair(api, admin, "live")
            jid = (await api.get("/sessions/live/status")).json()["jid"]
            assert (await admin.post(f"/connections/{jid}/stall")).status_code == 200
            # The dead link is noticed (keepalive unanswered: 408) and the session leaves `open`;
            # it may reconnect faster than we poll, so look at the disconnect it records.
            async with asyncio.timeout(5):
                while True:
                    status = (await api.get("/sessions/live/status")).json()
                    last = status["last_disconnect"]
                    if last is not None and last["code"] == 408:
                        break
                    assert status["state"] == "open"
                    await asyncio.sleep(0.02)
            await wait_status(api, "live", "open", timeout=10)  # and it comes back by itself
            phone = (await admin.get(f"/phones/{number}")).json()
            assert phone["devices"][0]["connected"]
    finally:
        await svc.stop()


async def test_the_database_pool_size_is_a_setting(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    settings = service_settings(sim, database_url, tmp_path, WAHTTP_DB_POOL_SIZE=3)
    async with running(settings) as svc, svc.http() as api:
        assert svc.app.state.services.db.pool.get_max_size() == 3
        # The LISTEN and the worker lease hold one each: one is left to work with.
        assert (await api.post("/sessions", json={"id": "pool"})).status_code == 201
        assert [s["id"] for s in (await api.get("/sessions")).json()] == ["pool"]
    with pytest.raises(ValueError, match="WAHTTP_DB_POOL_SIZE"):
        service_settings(sim, database_url, tmp_path, WAHTTP_DB_POOL_SIZE=2)
