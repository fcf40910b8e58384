"""Shared fixtures: a running simulator (WebSocket + admin API) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from wahttp.sim.runner import SimHandle, start_sim

# PostgreSQL fixtures (machine server and embedded), and the service, its API client and a
# webhook receiver, live in their own modules.
pytest_plugins = ["dbfixtures", "servicefixtures"]


@pytest.fixture
async def sim() -> AsyncIterator[SimHandle]:
    handle = await start_sim()
    try:
        yield handle
    finally:
        await handle.stop()


@pytest.fixture
async def admin(sim: SimHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.admin_url, timeout=30) as client:
        yield client
