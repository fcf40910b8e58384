"""The HTTP edge of the service as `wahttp serve` runs it (server/edge.uvicorn_config): slow and
keyless clients are cut off, answers are not cached, the access log keeps no key.

Raw sockets on loopback; the timeouts are short here and the waits generous (no timing claims
beyond "closed after the timeout, well before forever")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from servicetools import service_settings

from wahttp.server.app import create_app
from wahttp.server.edge import uvicorn_config
from wahttp.server.settings import Settings
from wahttp.sim.runner import SimHandle

TIMEOUT = 1.5  # WAHTTP_HEADER_TIMEOUT and WAHTTP_REQUEST_TIMEOUT here
SLOW_SOCKETS = 50


@pytest.fixture
def db_dsn(postgres_dsn: str) -> str:
    """The machine's PostgreSQL only: the HTTP edge does not depend on the backend."""
    return postgres_dsn


@dataclass
class Served:
    url: str
    port: int
    key: str

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, headers={"X-Api-Key": self.key})


@contextlib.asynccontextmanager
async def serving(settings: Settings, log_level: str = "warning") -> AsyncIterator[Served]:
    """The app behind uvicorn configured exactly as `wahttp serve` does it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level=log_level, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        assert settings.api_key is not None
        yield Served(f"http://127.0.0.1:{port}", port, settings.api_key.get_secret_value())
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


def edge_settings(sim: SimHandle, database_url: str, tmp: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "WAHTTP_HEADER_TIMEOUT": TIMEOUT,
        "WAHTTP_REQUEST_TIMEOUT": TIMEOUT,
        "WAHTTP_MAX_CONNECTIONS": 4 * SLOW_SOCKETS,
        **extra,
    }
    return service_settings(sim, database_url, tmp, **values)


@dataclass
class Outcome:
    data: bytes  # everything the server sent until it closed
    seconds: float  # from the first byte sent to the close

    @property
    def status(self) -> int:
        return int(self.data.split(b" ", 2)[1]) if self.data.startswith(b"HTTP/1.1 ") else 0


async def trickle(port: int, head: bytes, drip: bytes, every: float, limit: float) -> Outcome:
    """Send `head`, then `drip` every `every` seconds until the server closes (or `limit`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()

    async def dripping() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            if head:
                writer.write(head)
            while True:
                await writer.drain()
                await asyncio.sleep(every)
                writer.write(drip)

    sender = asyncio.create_task(dripping())
    try:
        data = await asyncio.wait_for(reader.read(), limit)  # until the server closes
    except TimeoutError:
        data = b"<still open>"
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return Outcome(data, time.monotonic() - start)


async def test_slow_and_keyless_sockets_are_cut_while_the_api_answers(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    async with serving(edge_settings(sim, database_url, tmp_path)) as served:
        port, limit = served.port, 20.0
        # Headers one line at a time, never finished (no key either).
        header_drip = [
            trickle(port, b"POST /sessions HTTP/1.1\r\nHost: x\r\n", b"X-Pad: a\r\n", 0.2, limit)
            for _ in range(SLOW_SOCKETS)
        ]
        # Complete headers without a key, then a 250 KB body a kilobyte at a time.
        body_head = (
            b"POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 250000\r\n\r\n"
        )
        body_drip = [trickle(port, body_head, b"x" * 1000, 0.1, limit) for _ in range(SLOW_SOCKETS)]
        silent = trickle(port, b"", b"", 3600, limit)  # opens and says nothing
        slow = asyncio.gather(*header_drip, *body_drip, silent)

        # Meanwhile, keyed requests are answered (each within generous bounds).
        async with served.http() as api:
            await asyncio.sleep(0.3)
            for _ in range(5):
                resp = await asyncio.wait_for(api.get("/sessions"), 10)
                assert resp.status_code == 200, resp.text
                assert (await asyncio.wait_for(api.get("/health"), 10)).status_code == 200
                await asyncio.sleep(0.2)
        outcomes = await slow

    headers_cut = outcomes[:SLOW_SOCKETS] + outcomes[-1:]
    for outcome in headers_cut:
        assert outcome.status == 408, outcome.data[:300]
        assert b'"code":"request_timeout"' in outcome.data
        assert TIMEOUT - 0.3 <= outcome.seconds < limit  # closed after the timeout, not before
    for outcome in outcomes[SLOW_SOCKETS:-1]:
        assert outcome.status == 401, outcome.data[:300]  # before a byte of the body was read
        assert b'"code":"missing_api_key"' in outcome.data
        assert outcome.seconds < TIMEOUT + 5


async def test_keyed_slow_bodies_get_408_and_unread_ones_are_cut(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    async with serving(edge_settings(sim, database_url, tmp_path)) as served:
        key = served.key.encode()
        # A body the app reads, too slowly: 408 in the API's format, then the socket closes.
        read_slowly = await trickle(
            served.port,
            b"POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Api-Key: " + key + b"\r\nContent-Length: 5000\r\n\r\n{",
            b" ",
            0.1,
            20,
        )
        assert read_slowly.status == 408, read_slowly.data[:300]
        assert b'"code":"request_timeout"' in read_slowly.data
        assert TIMEOUT - 0.3 <= read_slowly.seconds < 10
        # A body nobody reads (the GET is answered at once): the rest may not trickle forever.
        unread = await trickle(
            served.port,
            b"GET /sessions HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + key + b"\r\n"
            b"Content-Length: 100000\r\n\r\n",
            b"x" * 100,
            0.1,
            20,
        )
        assert unread.status == 200, unread.data[:300]
        assert TIMEOUT <= unread.seconds < 10, unread.data[-100:]
        async with served.http() as api:
            assert [s["id"] for s in (await api.get("/sessions")).json()] == []


async def test_connections_over_the_cap_get_503(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    settings = edge_settings(sim, database_url, tmp_path, WAHTTP_MAX_CONNECTIONS=3)
    async with serving(settings) as served:
        held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(3)]
        try:
            request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            refused = await trickle(served.port, request, b"", 9, 10)
            assert refused.status == 503, refused.data
            assert b'"code":"overloaded"' in refused.data and b"retry-after: 1" in refused.data
        finally:
            for _, writer in held:
                writer.close()
        await asyncio.sleep(0.3)  # the held ones are gone: room again
        async with served.http() as api:
            assert (await api.get("/health")).status_code == 200


async def test_secrets_are_not_cached_and_keys_in_urls_not_logged(
    sim: SimHandle, database_url: str, tmp_path: Path
) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep = Keep()
    async with serving(edge_settings(sim, database_url, tmp_path), log_level="info") as served:
        logging.getLogger("uvicorn.access").addHandler(keep)
        try:
            async with served.http() as api:
                assert (await api.post("/sessions", json={"id": "alice"})).status_code == 201
                made = await api.post("/keys", json={"session": "alice"})
                assert made.status_code == 201
                session_key = made.json()["key"]
                hook = await api.get("/sessions/alice/webhook")
                assert hook.status_code == 200 and hook.json()["secret"]
                for resp in (made, hook, await api.get("/health"), await api.get("/nowhere")):
                    assert resp.headers["cache-control"] == "no-store", resp.request.url
                # Keys in a query string are not how keys are sent, but they must not be logged.
                for params in (
                    {"api_key": served.key},
                    {"key": session_key, "status": "dead"},
                    {"session": session_key},
                    {"token": secrets.token_hex(8), "limit": "5"},
                ):
                    await api.get("/keys", params=params)
                    await api.get("/sessions/alice/webhook/deliveries", params=params)
        finally:
            logging.getLogger("uvicorn.access").removeHandler(keep)
    text = "\n".join(lines)
    assert "/sessions/alice/webhook/deliveries?key=[redacted]&status=dead" in text, text
    assert "limit=5" in text and "api_key=[redacted]" in text
    assert served.key not in text and session_key not in text, text
