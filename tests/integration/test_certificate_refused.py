"""A wrong WAHTTP_WA_ROOT_KEY: the session says the server certificate was refused (status,
pair-request, QR, one log line) at once, and keeps retrying with backoff."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from servicetools import Service, running, service_settings

from wahttp.sim.runner import SimHandle

WRONG_ROOT_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
async def service(sim: SimHandle, database_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    settings = service_settings(sim, database_url, tmp_path, WAHTTP_WA_ROOT_KEY=WRONG_ROOT_KEY)
    async with running(settings) as svc:
        yield svc


async def test_a_refused_certificate_shows_at_once_and_the_session_keeps_trying(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wahttp.server.sessions")
    assert (await api.post("/sessions", json={"id": "certs"})).status_code == 201

    started = time.monotonic()
    resp = await api.post("/sessions/certs/pair-request", json={"number": "+15551234567"})
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert error["code"] == "server_certificate_refused", error
    assert "WAHTTP_WA_ROOT_KEY" in str(error["message"])
    assert time.monotonic() - started < 5  # not the 20 s wait for a registration stream

    qr = await api.get("/sessions/certs/qr")
    assert qr.status_code == 503 and qr.json()["error"]["code"] == "server_certificate_refused"

    status = (await api.get("/sessions/certs/status")).json()
    last = status["last_disconnect"]
    assert last is not None and last["code"] == 495, status
    assert "server certificate refused" in last["reason"]
    assert "WAHTTP_WA_ROOT_KEY" in last["reason"] and "WAHTTP_WA_URL" in last["reason"]
    assert status["state"] in ("reconnecting", "connecting"), status

    await asyncio.sleep(1.5)  # several retries (backoff 0.05 s to 0.5 s in tests)
    status = (await api.get("/sessions/certs/status")).json()
    assert status["state"] in ("reconnecting", "connecting"), status
    assert [s["id"] for s in (await api.get("/sessions")).json()] == ["certs"]
    refusals = [
        r
        for r in caplog.records
        if "certificate refused" in r.getMessage() and r.levelno >= logging.WARNING
    ]
    attempts = [r for r in caplog.records if "certificate refused" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]  # one line, not one a retry
    assert len(attempts) >= 3
    assert WRONG_ROOT_KEY not in caplog.text


async def test_an_unreachable_server_shows_in_last_disconnect(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    settings = service_settings(
        sim, database_url, tmp_path / "far", WAHTTP_WA_URL="ws://127.0.0.1:1/ws/chat"
    )
    async with running(settings) as svc, svc.http() as api:
        assert (await api.post("/sessions", json={"id": "far"})).status_code == 201
        async with asyncio.timeout(10):
            while True:
                status = (await api.get("/sessions/far/status")).json()
                if status["last_disconnect"] is not None:
                    break
                await asyncio.sleep(0.05)
        assert status["state"] in ("reconnecting", "connecting"), status
        assert status["last_disconnect"]["reason"], status
