"""`wahttp serve` as a real process (SIGKILL-able), and a fresh database schema for it."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_env(
    ws_url: str, root_key_b64: str, dsn: str, api_key: str, folder: Path, **extra: str
) -> dict[str, str]:
    """The environment of a `wahttp serve` worker on loopback with its own port and folders
    under `folder`, against a simulator; `extra` adds or overrides settings."""
    return {
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "DATABASE_URL": dsn,
        "WAHTTP_API_KEY": api_key,
        "WAHTTP_DATA_DIR": str(folder / "data"),
        "WAHTTP_AUTH_DIR": str(folder / "auth"),
        "WAHTTP_WA_URL": ws_url,
        "WAHTTP_WA_ROOT_KEY": root_key_b64,
        "WAHTTP_RECONNECT_BASE": "0.2",
        "WAHTTP_LEASE_INTERVAL": "1",
        "WAHTTP_SEND_RATE": "0",
        **extra,
    }


@asynccontextmanager
async def fresh_schema_dsn(dsn: str, prefix: str) -> AsyncIterator[str]:
    """A DSN whose search_path is a new schema, dropped afterwards."""
    schema = f"{prefix}_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")  # generated name, not input
    try:
        separator = "&" if "?" in dsn else "?"
        yield f"{dsn}{separator}search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


class ServeProcess:
    """`wahttp serve` in its own process, which a test may SIGKILL and start again."""

    def __init__(self, env: Mapping[str, str], log: Path, api_key: str) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.port = int(self.env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = httpx.AsyncClient(base_url=self.url, timeout=30, headers={"X-Api-Key": api_key})

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wahttp.cli", "serve", env=self.env, stderr=self.log.open("ab")
        )
        async with asyncio.timeout(60):
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(f"wahttp serve exited with {self.proc.returncode}")
                try:
                    if (await self.api.get("/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self.api.aclose()

    async def status(self, session_id: str) -> dict[str, Any]:
        resp = await self.api.get(f"/sessions/{session_id}/status")
        data: dict[str, Any] = resp.json() if resp.status_code == 200 else {"state": "missing"}
        return data

    async def wait_state(self, session_id: str, state: str, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if (await self.status(session_id)).get("state") == state:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
