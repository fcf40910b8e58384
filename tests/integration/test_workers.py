"""Three `wahttp serve` workers on one PostgreSQL: each session runs on exactly one of them, any
worker answers for any session, and a SIGKILLed worker's sessions are taken over by the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hooktools import Receiver
from processtools import ServeProcess, fresh_schema_dsn, serve_env
from simtools import new_phone

from wahttp.sim.runner import SimHandle

API_KEY = "workers-admin-key-" + "w" * 20
SESSIONS = 9


@pytest.fixture
async def workers_db(postgres_dsn: str) -> AsyncIterator[str]:
    async with fresh_schema_dsn(postgres_dsn, "wahttp_workers") as dsn:
        yield dsn


async def owners(workers: list[ServeProcess]) -> dict[str, list[str]]:
    """Session id -> the live workers whose /health counts it (from each worker's status)."""
    placed: dict[str, list[str]] = {}
    for w in workers:
        if not w.running:
            continue
        worker_id = (await w.api.get("/health")).json()["worker"]
        for s in range(SESSIONS):
            status = await w.status(f"s{s}")
            if status.get("worker") == worker_id:
                placed.setdefault(f"s{s}", []).append(worker_id)
    return placed


async def test_three_workers_one_database_survive_a_sigkill(
    sim: SimHandle, admin: httpx.AsyncClient, workers_db: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    await receiver.up()
    workers = []
    for i in range(3):
        env = serve_env(
            sim.ws_url,
            sim.root_key_b64,
            workers_db,
            API_KEY,
            tmp_path / f"w{i}",
            WAHTTP_RECONNECT_MAX="2",
            WAHTTP_LEASE_TTL="10",
            WAHTTP_WEBHOOK_URL=receiver.url,
            WAHTTP_WEBHOOK_SECRET="workers-webhook-secret-0123",
            WAHTTP_WEBHOOK_BACKOFF_BASE="0.2",
        )
        workers.append(ServeProcess(env, tmp_path / f"worker{i}.log", API_KEY))
    try:
        await asyncio.gather(*(w.start() for w in workers))
        ids = [f"s{i}" for i in range(SESSIONS)]
        friends: dict[str, str] = {}
        for i, session_id in enumerate(ids):
            # Created on one worker, linked through the next, watched through the third.
            created = await workers[i % 3].api.post("/sessions", json={"id": session_id})
            assert created.status_code == 201, created.text
            number = await new_phone(admin)
            pair = await workers[(i + 1) % 3].api.post(
                f"/sessions/{session_id}/pair-request", json={"number": number}
            )
            assert pair.status_code == 200, pair.text
            code = pair.json()["pairingCode"]
            await admin.post(f"/phones/{number}/pairing-code", json={"code": code})
            await workers[(i + 2) % 3].wait_state(session_id, "open")
            friends[session_id] = await new_phone(admin)

        placed = await owners(workers)
        assert sorted(placed) == ids
        assert all(len(on) == 1 for on in placed.values()), placed
        assert len({on[0] for on in placed.values()}) == 3  # spread over all three
        health = [(await w.api.get("/health")).json()["sessions"]["total"] for w in workers]
        assert sum(health) == SESSIONS

        victim = workers[0]
        victim_id = (await victim.api.get("/health")).json()["worker"]
        moved = [s for s, on in placed.items() if on == [victim_id]]
        assert moved
        killed_at = time.monotonic()
        await victim.kill()
        survivors = workers[1:]
        # Taken over by the survivors' scans (listing claims nothing; a status request would).
        async with asyncio.timeout(60):
            while {s["status"] for s in (await survivors[0].api.get("/sessions")).json()} != {
                "open"
            }:
                await asyncio.sleep(0.1)
        took = time.monotonic() - killed_at
        print(f"\n{len(moved)} sessions of the killed worker open again after {took:.1f}s")

        placed = await owners(workers)
        assert sorted(placed) == ids
        assert all(len(on) == 1 for on in placed.values()), placed
        assert victim_id not in {on[0] for on in placed.values()}
        health = [(await w.api.get("/health")).json()["sessions"]["total"] for w in survivors]
        assert sum(health) == SESSIONS
        assert (await admin.get("/stats")).json()["replaced"] == 0  # never two sockets

        # Sends through either survivor, whichever runs the session.
        sent: list[tuple[str, str]] = []
        for session_id in ids:
            for w in survivors:
                resp = await w.api.post(
                    f"/sessions/{session_id}/send-message",
                    json={"to": friends[session_id], "message": f"after kill via {w.port}"},
                )
                assert resp.status_code == 200, resp.text
                sent.append((friends[session_id], resp.json()["messageId"]))
        async with asyncio.timeout(30):
            for number, message_id in sent:
                while True:
                    inbox = (await admin.get(f"/phones/{number}/messages")).json()
                    got = Counter(m["id"] for m in inbox["received"])
                    if got[message_id]:
                        assert got[message_id] == 1
                        break
                    await asyncio.sleep(0.1)

        listed = (await survivors[1].api.get("/sessions")).json()
        assert sorted(s["id"] for s in listed) == ids
        assert {s["status"] for s in listed} == {"open"}

        # Inbound: both survivors drain one webhook outbox; every message arrives exactly once.
        texts = set()
        for session_id in ids:
            number = (await survivors[0].status(session_id))["jid"].split(":")[0]
            for k in range(2):
                text = f"to {session_id} #{k}"
                await admin.post(
                    f"/phones/{friends[session_id]}/messages", json={"to": number, "text": text}
                )
                texts.add(text)

        def inbound() -> Counter[str]:
            return Counter(
                r.json()["data"]["text"]
                for r in receiver.delivered()
                if r.json()["type"] == "message" and r.json()["data"]["text"] in texts
            )

        await receiver.wait_for(lambda: set(inbound()) == texts, timeout=30)
        assert set(inbound().values()) == {1}
    finally:
        for w in workers:
            await w.stop()
        await receiver.down()
        for w in workers:
            assert "Traceback" not in w.log_text(), w.log_text()[-3000:]
