"""The database pool hands out connections first come, first served (both DB backends)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dbtools import fresh_schema

from wahttp.server.db import Database

WORKERS = 12
ROUNDS = 8


@pytest.fixture
async def small_db(db_dsn: str) -> AsyncIterator[Database]:
    async with fresh_schema(db_dsn, migrate=False, max_size=2) as database:
        yield database


async def test_waiters_are_served_in_the_order_they_came(small_db: Database) -> None:
    # Each worker takes a connection, gives it back and at once queues for another. In
    # arrival order every other worker is in line before it again: strict rotation. With
    # asyncpg's queue alone a worker that just gave a connection back could take it again
    # ahead of the waiter woken for it, and some waited many turns.
    served: list[int] = []
    gate = asyncio.Event()

    async def worker(n: int) -> None:
        await gate.wait()
        for _ in range(ROUNDS):
            async with small_db.acquire() as conn:
                served.append(n)
                await conn.fetchval("SELECT 1")

    tasks = [asyncio.create_task(worker(n)) for n in range(WORKERS)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert len(served) == WORKERS * ROUNDS
    # Between two turns of a worker, the others waiting had theirs: all but the one holding
    # the other connection (pool of 2), while every worker still has rounds to go.
    last_turn: dict[int, int] = {}
    for position, n in enumerate(served[: WORKERS * (ROUNDS - 1)]):
        if n in last_turn:
            assert position - last_turn[n] >= WORKERS - 2, served
        last_turn[n] = position
