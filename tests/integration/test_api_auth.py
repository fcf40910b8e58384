"""API keys, send rate limits and request size limits, against the service on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from servicetools import Service, service_settings, wait_status
from simtools import new_phone

from wahttp.server import auth
from wahttp.sim.runner import SimHandle

SAMPLE_PARAMS = {
    "session_id": "alice",
    "message_id": "3EB0ABC",
    "delivery_id": "1",
    "key_id": str(uuid.uuid4()),
}


@pytest.fixture
async def anonymous(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with service.http(anonymous=True) as client:
        yield client


def every_route(app: FastAPI) -> list[tuple[str, str, bool]]:
    """(method, concrete path, is an API route) for each route of the app, included or not."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = str(route.path)
        for name, value in SAMPLE_PARAMS.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"add a sample value for {route.path}"
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, path, isinstance(route.original_route, APIRoute)))
    return found


async def make_key(api: httpx.AsyncClient, session_id: str, name: str | None = None) -> str:
    resp = await api.post("/keys", json={"session": session_id, "name": name})
    assert resp.status_code == 201, resp.text
    key: str = resp.json()["key"]
    return key


async def open_session(api: httpx.AsyncClient, admin: httpx.AsyncClient, session_id: str) -> str:
    """Create a session and link it to a new simulated phone; returns the phone's number."""
    assert (await api.post("/sessions", json={"id": session_id})).status_code == 201
    number = await new_phone(admin)
    code = (await api.post(f"/sessions/{session_id}/pair-request", json={"number": number})).json()
    await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
    await wait_status(api, session_id, "open")
    return number


# -- keys ----------------------------------------------------------------------------------------


async def test_every_route_but_health_and_docs_needs_a_key(
    service: Service, api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    routes = every_route(service.app)
    assert len(routes) >= 20
    assert auth.unprotected_routes(service.app) == []
    public = {"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    assert {path for _, path, _ in routes} >= public
    for method, path, _ in routes:
        if path in public:
            resp = await anonymous.request(method, path)
            assert resp.status_code == 200, (method, path, resp.text)
            continue
        body: dict[str, Any] | None = {} if method in ("POST", "PUT") else None
        resp = await anonymous.request(method, path, json=body)
        assert resp.status_code == 401, (method, path, resp.text)
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert resp.json()["error"]["code"] == "missing_api_key"
        for headers in (
            {"X-Api-Key": "not-a-key-" * 3},
            {"Authorization": "Bearer wak_" + "A" * 43},
            {"Authorization": f"Basic {service.admin_key()}"},  # only the Bearer scheme counts
        ):
            resp = await anonymous.request(method, path, json=body, headers=headers)
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert resp.json()["error"]["code"] in ("invalid_api_key", "missing_api_key")

    # The admin key works in either header; the docs describe both schemes.
    assert (await api.get("/sessions")).status_code == 200
    bearer = {"Authorization": f"Bearer {service.admin_key()}"}
    assert (await anonymous.get("/sessions", headers=bearer)).status_code == 200
    schemes = (await anonymous.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "the admin key or a session key",
    }
    assert schemes["Bearer"]["scheme"] == "bearer"


def test_an_app_with_a_route_left_open_is_refused() -> None:
    app = FastAPI()
    app.get("/health")(lambda: None)
    app.get("/secret")(lambda: None)
    assert auth.unprotected_routes(app) == ["GET /secret"]
    with pytest.raises(RuntimeError, match="/secret"):
        auth.check_routes(app)


async def test_session_keys_reach_only_their_own_session(
    service: Service, api: httpx.AsyncClient, anonymous: httpx.AsyncClient, database_url: str
) -> None:
    for session_id in ("a", "b"):
        assert (await api.post("/sessions", json={"id": session_id})).status_code == 201
    created = await api.post("/keys", json={"session": "a", "name": "ci"})
    assert created.status_code == 201, created.text
    info = created.json()
    key_a = info["key"]
    assert set(info) == {"id", "key", "session", "name", "created_at", "prefix"}
    assert info["session"] == "a" and info["name"] == "ci"
    assert key_a.startswith("wak_") and len(key_a) >= 40 and info["prefix"] == key_a[:12]
    key_b = await make_key(api, "b")

    as_a = {"X-Api-Key": key_a}
    allowed = [
        ("GET", "/sessions/a/status", None, 200),
        ("GET", "/sessions/a/webhook", None, 200),
        ("PUT", "/sessions/a/webhook", {"url": "https://example.com/hook"}, 200),
        ("GET", "/sessions/a/webhook/deliveries", None, 200),
        ("GET", "/sessions/a/messages/nope", None, 404),  # reached the route
        ("POST", "/sessions/a/messages/nope/read", None, 404),
        ("POST", "/sessions/a/send-message", {"to": "+15551234567", "message": "x"}, 409),
    ]
    for method, path, body, status in allowed:
        resp = await anonymous.request(method, path, json=body, headers=as_a)
        assert resp.status_code == status, (method, path, resp.text)
    bearer_a = {"Authorization": f"Bearer {key_a}"}
    assert (await anonymous.get("/sessions/a/status", headers=bearer_a)).status_code == 200

    forbidden = [
        ("GET", "/sessions/b/status", None),
        ("GET", "/sessions/ghost/status", None),  # no hint whether it exists
        ("PUT", "/sessions/b/webhook", {"url": "https://example.com/hook"}),
        ("POST", "/sessions/b/send-message", {"to": "+15551234567", "message": "x"}),
        ("GET", "/sessions", None),
        ("POST", "/sessions", {"id": "c"}),
        ("DELETE", "/sessions/a", None),  # not even its own
        ("DELETE", "/sessions/b", None),
        ("POST", "/keys", {"session": "a"}),
        ("GET", "/keys", None),
        ("DELETE", f"/keys/{info['id']}", None),
    ]
    for method, path, body in forbidden:
        resp = await anonymous.request(method, path, json=body, headers=as_a)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "forbidden"

    # Listing shows no secrets.
    listed = (await api.get("/keys", params={"session": "a"})).json()
    assert [k["id"] for k in listed] == [info["id"]]
    assert "key" not in listed[0] and listed[0]["prefix"] == info["prefix"]
    assert {k["session"] for k in (await api.get("/keys")).json()} == {"a", "b"}
    assert (await api.get("/keys", params={"session": "nobody"})).json() == []

    # Stored hashed: a digest and the prefix, the key nowhere.
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM api_keys")
    finally:
        await conn.close()
    assert len(rows) == 2
    for row in rows:
        for value in row.values():
            assert key_a not in str(value) and key_b not in str(value)
            assert key_a.encode() not in (value if isinstance(value, bytes) else b"")
    stored = {str(r["id"]): r for r in rows}[info["id"]]
    assert bytes(stored["key_hash"]) == hashlib.sha256(key_a.encode()).digest()

    # Bad requests.
    missing = await api.post("/keys", json={"session": "nobody"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "session_not_found"
    for bad in ({}, {"session": "../x"}, {"session": "a", "extra": 1}, {"session": "a", "name": 1}):
        assert (await api.post("/keys", json=bad)).status_code == 400, bad
    assert (await api.delete("/keys/not-a-uuid")).status_code == 400
    assert (await api.delete(f"/keys/{uuid.uuid4()}")).status_code == 404

    # Revoked: 401 at once.
    revoked = await api.delete(f"/keys/{info['id']}")
    assert revoked.status_code == 200 and revoked.json() == {"success": True, "id": info["id"]}
    resp = await anonymous.get("/sessions/a/status", headers=as_a)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await api.delete(f"/keys/{info['id']}")).status_code == 404

    # A deleted session takes its keys with it.
    assert (await anonymous.get("/sessions/b/status", headers={"X-Api-Key": key_b})).is_success
    assert (await api.delete("/sessions/b")).status_code == 200
    resp = await anonymous.get("/sessions/b/status", headers={"X-Api-Key": key_b})
    assert resp.status_code == 401
    assert (await api.get("/keys")).json() == []


async def test_without_an_api_key_setting_one_is_generated_into_the_data_folder(
    sim: SimHandle, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    svc = Service(service_settings(sim, database_url, tmp_path, WAHTTP_API_KEY=None))
    await svc.start()
    try:
        path = tmp_path / "data" / "admin-api-key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = path.read_text().strip()
        assert len(key) >= 40 and key == svc.admin_key()
        async with svc.http() as api, svc.http(anonymous=True) as anonymous:
            assert (await api.get("/sessions")).status_code == 200
            assert (await anonymous.get("/sessions")).status_code == 401
            assert (await api.post("/sessions", json={"id": "s"})).status_code == 201
            session_key = await make_key(api, "s")
        await svc.restart()  # the same key again, read from the file
        assert path.read_text().strip() == key
        async with svc.http() as api:
            assert (await api.get("/sessions")).status_code == 200
            resp = await api.get("/sessions/s/status", headers={"X-Api-Key": session_key})
            assert resp.status_code == 200
    finally:
        await svc.stop()
    assert str(path) in caplog.text  # where to find it...
    assert key not in caplog.text and session_key not in caplog.text  # ...but never the key


async def test_auth_off_opens_everything(
    sim: SimHandle, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = service_settings(sim, database_url, tmp_path, WAHTTP_API_KEY=None, WAHTTP_AUTH="OFF")
    svc = Service(settings)
    await svc.start()
    try:
        async with svc.http(anonymous=True) as anonymous:
            assert (await anonymous.post("/sessions", json={"id": "open"})).status_code == 201
            assert (await anonymous.get("/sessions")).status_code == 200
            assert (await anonymous.get("/sessions/open/status")).status_code == 200
            assert (await anonymous.get("/keys")).status_code == 200
            wrong = await anonymous.get("/sessions", headers={"X-Api-Key": "whatever"})
            assert wrong.status_code == 200
    finally:
        await svc.stop()
    assert "AUTHENTICATION IS OFF" in caplog.text
    assert not (tmp_path / "data" / "admin-api-key").exists()


# -- rate limit ----------------------------------------------------------------------------------


async def test_sends_over_the_rate_get_429_then_recover(
    sim: SimHandle, admin: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    # 30 a minute (one every 2 s), 2 at once.
    settings = service_settings(
        sim, database_url, tmp_path, WAHTTP_SEND_RATE=30, WAHTTP_SEND_BURST=2
    )
    svc = Service(settings)
    await svc.start()
    try:
        async with svc.http() as api:
            await open_session(api, admin, "fast")
            friend = await new_phone(admin)
            message = {"to": f"+{friend}", "message": "hi"}
            for _ in range(2):
                resp = await api.post("/sessions/fast/send-message", json=message)
                assert resp.status_code == 200, resp.text
            limited = await api.post("/sessions/fast/send-message", json=message)
            assert limited.status_code == 429, limited.text
            error = limited.json()["error"]
            assert error["code"] == "rate_limited" and error["message"]
            retry_after = int(limited.headers["Retry-After"])
            assert retry_after in (1, 2) and error["retry_after"] == retry_after
            # The bucket is the session's, whichever key sends.
            key = await make_key(api, "fast")
            again = await api.post(
                "/sessions/fast/send-message", json=message, headers={"X-Api-Key": key}
            )
            assert again.status_code == 429
            await asyncio.sleep(retry_after + 0.1)
            resp = await api.post("/sessions/fast/send-message", json=message)
            assert resp.status_code == 200, resp.text
    finally:
        await svc.stop()


# -- request size --------------------------------------------------------------------------------


async def test_bodies_over_the_limit_get_413(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    svc = Service(service_settings(sim, database_url, tmp_path, WAHTTP_MAX_BODY_BYTES=2048))
    await svc.start()

    async def chunks(total: int, size: int = 512) -> AsyncIterator[bytes]:
        body = b'{"id": "chunked", "pushName": "' + b"x" * total + b'"}'
        for start in range(0, len(body), size):
            yield body[start : start + size]

    def check_413(resp: httpx.Response) -> None:
        assert resp.status_code == 413, resp.text
        error: dict[str, Any] = resp.json()["error"]
        assert error["code"] == "payload_too_large" and error["limit"] == 2048
        assert resp.headers["content-type"] == "application/json"

    try:
        async with svc.http() as api, svc.http(anonymous=True) as anonymous:
            big = {"id": "big", "pushName": "x" * 300_000}
            check_413(await api.post("/sessions", json=big))  # Content-Length up front
            check_413(await anonymous.post("/sessions", json=big))  # checked before the key

            json_type = {"Content-Type": "application/json"}
            request = api.build_request(
                "POST", "/sessions", content=chunks(200_000, 4096), headers=json_type
            )
            assert "content-length" not in request.headers  # chunked
            assert request.headers["transfer-encoding"] == "chunked"
            check_413(await api.send(request))

            # Under the limit, both ways, all is well; the session "big" was never made.
            small = api.build_request("POST", "/sessions", content=chunks(10), headers=json_type)
            assert (await api.send(small)).status_code == 201
            url = "https://example.com/" + "x" * 1500  # about 1.5 KiB: under the limit
            resp = await api.post("/sessions", json={"id": "fine", "webhookUrl": url})
            assert resp.status_code == 201
            ids = {s["id"] for s in (await api.get("/sessions")).json()}
            assert ids == {"chunked", "fine"}
    finally:
        await svc.stop()
