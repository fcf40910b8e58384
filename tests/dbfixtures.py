"""PostgreSQL fixtures (a pytest plugin): the machine server and one embedded server per session.

Every test gets its own schema (tests/dbtools.py: fresh_schema), so tests never collide.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from dbtools import TEST_DSN, fresh_schema, unreachable_reason

from wahttp.server.db import Database, EmbeddedPostgres, start_embedded

DB_BACKENDS = ["postgres", "embedded"]
T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop, even when a loop runs in this thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The machine's server (WAHTTP_TEST_DATABASE_URL); skipped only if unreachable."""
    reason = run_sync(unreachable_reason(TEST_DSN))
    if reason is not None:
        pytest.skip(f"PostgreSQL at WAHTTP_TEST_DATABASE_URL is unreachable: {reason}")
    return TEST_DSN


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[tuple[str, EmbeddedPostgres]]:
    """One embedded server for the whole test session (fsync off: test data only).

    Its folder is not under pytest's tmp_path: pytest takes the o+x the server user needs off
    /tmp/pytest-of-<user> whenever another test session starts (initdb then fails)."""
    data_dir = Path(tempfile.mkdtemp(prefix="wahttp-embedded-pg-"))
    try:
        dsn, handle = run_sync(start_embedded(data_dir, durable=False))
        try:
            yield dsn, handle
        finally:
            run_sync(handle.stop())
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_dsn(embedded_server: tuple[str, EmbeddedPostgres]) -> str:
    return embedded_server[0]


@pytest.fixture(params=DB_BACKENDS)
def db_dsn(request: pytest.FixtureRequest) -> str:
    """The DSN of each PostgreSQL backend in turn."""
    dsn: str = request.getfixturevalue(f"{request.param}_dsn")
    return dsn


@pytest.fixture
async def database_url(db_dsn: str) -> AsyncIterator[str]:
    """A DSN (for DATABASE_URL) whose search_path is a fresh schema, dropped afterwards."""
    schema = f"wahttp_svc_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(db_dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")  # generated name, not input
        separator = "&" if "?" in db_dsn else "?"
        yield f"{db_dsn}{separator}search_path={schema}"
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[Database]:
    """A migrated Database in a fresh schema."""
    async with fresh_schema(db_dsn) as database:
        yield database
