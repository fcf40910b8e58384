"""Shared fixtures (a pytest plugin, see conftest.py): the REST service with default test
settings, an API client for it, and a webhook receiver. A module that needs other settings
defines its own `service` fixture (pytest prefers the nearer one); `api` then uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hooktools import Receiver
from servicetools import Service, running, service_settings

from wahttp.sim.runner import SimHandle


@pytest.fixture
async def service(sim: SimHandle, database_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    async with running(service_settings(sim, database_url, tmp_path)) as svc:
        yield svc


@pytest.fixture
async def api(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with service.http() as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    await rx.up()
    try:
        yield rx
    finally:
        await rx.down()
