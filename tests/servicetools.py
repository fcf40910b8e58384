"""Run the wahttp REST service in-process on loopback for tests, and restart it like a deploy."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from wahttp.server.app import create_app
from wahttp.server.settings import Settings
from wahttp.sim.runner import SimHandle


def service_settings(sim: SimHandle, database_url: str, tmp: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "HOST": "127.0.0.1",
        "PORT": 0,
        "DATABASE_URL": database_url,
        "WAHTTP_DATA_DIR": tmp / "data",
        "WAHTTP_AUTH_DIR": tmp / "auth_sessions",
        "WAHTTP_WA_URL": sim.ws_url,
        "WAHTTP_WA_ROOT_KEY": sim.root_key_b64,
        "WAHTTP_RECONNECT_BASE": 0.05,
        "WAHTTP_RECONNECT_MAX": 0.5,
        "WAHTTP_SHUTDOWN_TIMEOUT": 5,
        "WAHTTP_API_KEY": secrets.token_urlsafe(24),  # Service.http() sends it
        "WAHTTP_SEND_RATE": 0,  # no pacing here; test_api_auth.py tests the limit
        # Test receivers listen on loopback, which URLs set through the API may not reach by
        # default; test_webhooks.py tests that default.
        "WAHTTP_WEBHOOK_ALLOW_PRIVATE": True,
    }
    values.update(extra)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Service]:
    """A started Service, stopped on the way out."""
    svc = Service(settings)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


@dataclass
class Service:
    """The API app served by uvicorn inside the test's event loop."""

    settings: Settings
    url: str = ""
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    app: Any = field(default=None)

    async def start(self) -> None:
        """Serve on loopback; a restart keeps the port so clients keep their base URL."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(60):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                    raise RuntimeError("the service stopped during start-up")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 30)
        self._server = self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def admin_key(self) -> str | None:
        """WAHTTP_API_KEY, or the key the service generated in its data folder (None: none)."""
        if self.settings.api_key is not None:
            return self.settings.api_key.get_secret_value()
        path = Path(self.settings.data_dir) / "admin-api-key"
        return path.read_text().strip() if path.exists() else None

    def http(self, api_key: str | None = None, *, anonymous: bool = False) -> httpx.AsyncClient:
        """A client of the API sending `api_key` (default: the admin key), or none if anonymous."""
        key = None if anonymous else api_key or self.admin_key()
        headers = {"X-Api-Key": key} if key else {}
        return httpx.AsyncClient(base_url=self.url, timeout=30, headers=headers)


async def wait_status(
    http: httpx.AsyncClient, session_id: str, state: str, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll GET /sessions/{id}/status until it reports `state`."""
    last: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                resp = await http.get(f"/sessions/{session_id}/status")
                last = resp.json()
                if resp.status_code == 200 and last.get("state") == state:
                    return last
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{session_id} never reached {state}; last status: {last}") from None
