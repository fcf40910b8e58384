"""PostgreSQL goes away and comes back: every worker survives it without an operator.

A private PostgreSQL (tests/privatepg.py) is stopped and started again under real `wahttp serve`
processes and the simulator: a restart of a few seconds, a 20 s outage under traffic, and three
workers on one database through a restart. While the database is down the API answers 503 JSON
(never a 500, never a hang) and /health is not 200; afterwards every session is open again on
exactly one worker, and nothing accepted was lost. Below those, the cluster's failure paths one
at a time, on the shared test database (its server is never stopped: only our own connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hooktools import Receiver
from privatepg import PrivatePostgres, private_postgres
from processtools import ServeProcess
from processtools import serve_env as worker_env
from simtools import new_phone

from wahttp.server.cluster import Cluster
from wahttp.server.db import Database, DatabaseUnavailable
from wahttp.server.store import SessionRepository
from wahttp.sim.runner import SimHandle

API_KEY = "outage-admin-key-" + "o" * 20
HOOK_SECRET = "outage-webhook-secret-0123"
BOUNDED = 10.0  # no request may take longer than this, database down or not


@pytest.fixture
async def pg() -> AsyncIterator[PrivatePostgres]:
    async with private_postgres() as server:
        yield server


def serve_env(sim: SimHandle, dsn: str, tmp: Path, name: str, **extra: str) -> dict[str, str]:
    settings = {
        "WAHTTP_RECONNECT_MAX": "1",
        "WAHTTP_LEASE_TTL": "4",
        "WAHTTP_DB_TIMEOUT": "2",
        "WAHTTP_SHUTDOWN_TIMEOUT": "5",
        **extra,
    }
    return worker_env(sim.ws_url, sim.root_key_b64, dsn, API_KEY, tmp / name, **settings)


async def link(admin: httpx.AsyncClient, via: ServeProcess, session_id: str) -> tuple[str, str]:
    """Create and link a session by pairing code; (its number, a friend's number)."""
    created = await via.api.post("/sessions", json={"id": session_id})
    assert created.status_code == 201, created.text
    number = await new_phone(admin)
    pair = await via.api.post(f"/sessions/{session_id}/pair-request", json={"number": number})
    assert pair.status_code == 200, pair.text
    await admin.post(f"/phones/{number}/pairing-code", json={"code": pair.json()["pairingCode"]})
    await via.wait_state(session_id, "open", timeout=30)
    return number, await new_phone(admin)


async def send(w: ServeProcess, session_id: str, to: str, text: str) -> httpx.Response:
    return await w.api.post(
        f"/sessions/{session_id}/send-message", json={"to": to, "message": text}, timeout=BOUNDED
    )


async def received_ids(admin: httpx.AsyncClient, number: str) -> Counter[str]:
    inbox = (await admin.get(f"/phones/{number}/messages")).json()
    return Counter(m["id"] for m in inbox["received"])


async def wait_received(admin: httpx.AsyncClient, number: str, ids: list[str]) -> Counter[str]:
    async with asyncio.timeout(30):
        while True:
            got = await received_ids(admin, number)
            if all(got[i] for i in ids):
                return got
            await asyncio.sleep(0.1)


async def wait_healthy(w: ServeProcess, timeout: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            resp = await w.api.get("/health", timeout=BOUNDED)
            if resp.status_code == 200:
                body: dict[str, Any] = resp.json()
                return body
            await asyncio.sleep(0.2)


def assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"]["code"] == "database_unavailable", resp.text


def assert_clean_log(w: ServeProcess) -> None:
    text = w.log_text()
    assert "Traceback" not in text, text[-4000:]
    assert "Application shutdown failed" not in text, text[-4000:]
    assert " 500 " not in text, text[-4000:]


async def test_a_database_restart_is_survived_by_a_worker(
    sim: SimHandle, admin: httpx.AsyncClient, pg: PrivatePostgres, tmp_path: Path
) -> None:
    w = ServeProcess(serve_env(sim, pg.dsn, tmp_path, "w"), tmp_path / "w.log", API_KEY)
    try:
        await w.start()
        _number, friend = await link(admin, w, "r1")
        before = await send(w, "r1", friend, "before the restart")
        assert before.status_code == 200, before.text

        await pg.stop("fast")
        # Down: 503 JSON everywhere, at once (within the bounded client timeout).
        health = await w.api.get("/health", timeout=BOUNDED)
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "degraded"
        assert health.json()["database"] == "unavailable"
        assert (await w.api.head("/health", timeout=BOUNDED)).status_code == 503
        assert_unavailable(await w.api.get("/sessions/r1/status", timeout=BOUNDED))
        assert_unavailable(await send(w, "r1", friend, "while down"))
        assert_unavailable(await w.api.get("/sessions", timeout=BOUNDED))
        await asyncio.sleep(3)
        await pg.start()

        # Back: the worker rejoins and opens its session again within a few lease intervals.
        await w.wait_state("r1", "open", timeout=30)
        body = await wait_healthy(w)
        assert body["status"] == "ok" and body["sessions"] == {"total": 1, "open": 1}
        assert body["checks"] == {"database": "ok", "cluster": "ok", "sessions": "ok"}
        after = await send(w, "r1", friend, "after the restart")
        assert after.status_code == 200, after.text
        got = await wait_received(
            admin, friend, [before.json()["messageId"], after.json()["messageId"]]
        )
        assert set(got.values()) == {1}

        # /health answers HEAD, and names the worker (host, pid) only to the admin.
        async with httpx.AsyncClient(base_url=w.url, timeout=BOUNDED) as anonymous:
            assert (await anonymous.head("/health")).status_code == 200
            public = (await anonymous.get("/health")).json()
            assert public["worker"] is None
            wrong = await anonymous.get("/health", headers={"X-Api-Key": "x" * 30})
            assert wrong.json()["worker"] is None
        assert body["worker"]
        # SIGTERM after the outage: a clean shutdown.
        assert w.proc is not None
        await w.stop()
        assert w.proc.returncode == 0, w.log_text()[-3000:]
    finally:
        await w.stop()
    assert_clean_log(w)


async def test_a_20s_outage_under_traffic_loses_nothing(
    sim: SimHandle, admin: httpx.AsyncClient, pg: PrivatePostgres, tmp_path: Path
) -> None:
    receiver = Receiver()
    await receiver.up()
    env = serve_env(
        sim,
        pg.dsn,
        tmp_path,
        "w",
        WAHTTP_WEBHOOK_URL=receiver.url,
        WAHTTP_WEBHOOK_SECRET=HOOK_SECRET,
        WAHTTP_WEBHOOK_BACKOFF_BASE="0.2",
        WAHTTP_WEBHOOK_BACKOFF_MAX="1",
    )
    w = ServeProcess(env, tmp_path / "w.log", API_KEY)
    try:
        await w.start()
        number, friend = await link(admin, w, "t1")
        accepted: list[str] = []  # sends answered 2xx: each must reach the phone
        texts: list[str] = []  # what the phone sent to the session: each must reach the webhook
        answers: Counter[int] = Counter()

        async def api_send(text: str) -> None:
            resp = await send(w, "t1", friend, text)  # httpx raises if it hangs past BOUNDED
            answers[resp.status_code] += 1
            if resp.status_code == 200:
                accepted.append(resp.json()["messageId"])
            else:
                assert resp.status_code in (409, 503), (resp.status_code, resp.text)
                assert "error" in resp.json()

        async def phone_send(text: str) -> None:
            resp = await admin.post(f"/phones/{friend}/messages", json={"to": number, "text": text})
            assert resp.status_code == 201, resp.text
            texts.append(text)

        for k in range(3):
            await api_send(f"before {k}")
            await phone_send(f"in before {k}")
        assert len(accepted) == 3

        await pg.stop("immediate")  # as a crash: no goodbye to the clients
        down_since = time.monotonic()
        k = 0
        health_codes: Counter[int] = Counter()
        while time.monotonic() - down_since < 20:
            await api_send(f"during {k}")
            await phone_send(f"in during {k}")
            health_codes[(await w.api.get("/health", timeout=BOUNDED)).status_code] += 1
            k += 1
            await asyncio.sleep(0.5)
        assert set(health_codes) == {503}, health_codes
        assert answers[503] >= k - 1, answers  # (the first may have raced the outage)
        await pg.start()

        await w.wait_state("t1", "open", timeout=40)
        await wait_healthy(w)
        for k in range(3):
            # Just back: a send may meet the session still settling (409/503), never a 500.
            async with asyncio.timeout(20):
                while True:
                    before = len(accepted)
                    await api_send(f"after {k}")
                    if len(accepted) > before:
                        break
                    await asyncio.sleep(0.2)
            await phone_send(f"in after {k}")

        # Every accepted send reached the phone, once.
        got = await wait_received(admin, friend, accepted)
        assert all(got[i] == 1 for i in accepted), got

        # Every inbound message reached the webhook (at least once), as one event.
        def inbound() -> dict[str, set[str]]:
            events: dict[str, set[str]] = {}
            for r in receiver.delivered():
                body = r.json()
                if body["type"] == "message":
                    events.setdefault(body["data"]["text"], set()).add(r.event_id)
            return events

        await receiver.wait_for(lambda: set(texts) <= set(inbound()), timeout=40)
        assert all(len(ids) == 1 for ids in inbound().values()), inbound()
        statuses = await w.api.get("/sessions/t1/status", timeout=BOUNDED)
        assert statuses.json()["state"] == "open"
        assert (await admin.get("/stats")).json()["replaced"] == 0
    finally:
        await w.stop()
        await receiver.down()
    assert_clean_log(w)


async def test_three_workers_survive_a_database_restart(
    sim: SimHandle, admin: httpx.AsyncClient, pg: PrivatePostgres, tmp_path: Path
) -> None:
    workers = [
        ServeProcess(serve_env(sim, pg.dsn, tmp_path, f"w{i}"), tmp_path / f"w{i}.log", API_KEY)
        for i in range(3)
    ]
    ids = [f"m{i}" for i in range(6)]
    try:
        await asyncio.gather(*(w.start() for w in workers))
        friends = {}
        for i, session_id in enumerate(ids):
            _number, friends[session_id] = await link(admin, workers[i % 3], session_id)

        await pg.restart(down=3, mode="fast")

        async def settled() -> list[dict[str, Any]] | None:
            """Every session open, each worker running its share (2), every worker healthy."""
            with contextlib.suppress(httpx.HTTPError, ValueError):
                listed = await workers[0].api.get("/sessions", timeout=BOUNDED)
                if listed.status_code != 200 or {s["status"] for s in listed.json()} != {"open"}:
                    return None
                healths = [await w.api.get("/health", timeout=BOUNDED) for w in workers]
                if {h.status_code for h in healths} != {200}:
                    return None
                bodies = [h.json() for h in healths]
                if [b["sessions"].get("open") for b in bodies] == [2, 2, 2]:
                    return bodies
            return None

        async with asyncio.timeout(40):
            while (healths := await settled()) is None:
                await asyncio.sleep(0.2)
        worker_ids = {h["worker"] for h in healths}
        assert len(worker_ids) == 3
        # Each session runs on exactly one worker: the one its status (from any worker) names.
        for session_id in ids:
            named = set()
            for w in workers:
                status = (await w.api.get(f"/sessions/{session_id}/status")).json()
                assert status["state"] == "open", status
                named.add(status["worker"])
            assert len(named) == 1 and named <= worker_ids, named
        # Never two sockets for one device: WhatsApp (the simulator) replaced none.
        assert (await admin.get("/stats")).json()["replaced"] == 0
        sent = {}
        for i, session_id in enumerate(ids):
            resp = await send(workers[(i + 1) % 3], session_id, friends[session_id], "after")
            assert resp.status_code == 200, resp.text
            sent[session_id] = resp.json()["messageId"]
        for session_id, message_id in sent.items():
            got = await wait_received(admin, friends[session_id], [message_id])
            assert got[message_id] == 1
    finally:
        for w in workers:
            await w.stop()
    for w in workers:
        assert_clean_log(w)


# -- the cluster's failure paths, one at a time ---------------------------------------------------


class Worker:
    def __init__(self, db: Database, **options: float) -> None:
        self.sessions: set[str] = set()
        self.cluster = Cluster(
            db,
            start_session=self._start,
            stop_session=self._stop,
            hosted=lambda: set(self.sessions),
            ttl=options.get("ttl", 3.0),
            interval=options.get("interval", 0.2),
        )

    async def _start(self, session_id: str, push_name: str | None) -> None:
        self.sessions.add(session_id)

    async def _stop(self, session_id: str) -> None:
        self.sessions.discard(session_id)

    async def stop_all(self) -> None:
        self.sessions.clear()


@pytest.fixture
async def worker(db: Database) -> AsyncIterator[Worker]:
    await SessionRepository(db).create("c1")
    made = Worker(db)
    await made.cluster.start()
    assert made.sessions == {"c1"}
    try:
        yield made
    finally:
        await made.cluster.stop(made.stop_all)


async def rejoined(worker: Worker, old_id: str) -> None:
    async with asyncio.timeout(15):
        while not (
            worker.cluster.worker_id != old_id
            and worker.cluster._lock_conn is not None
            and worker.sessions == {"c1"}
            and worker.cluster.problem() is None
        ):
            await asyncio.sleep(0.05)


async def test_a_lost_lock_connection_fences_and_rejoins(db: Database, worker: Worker) -> None:
    # The server ends the lock connection (as a database restart does): the pool takes the
    # broken connection back, so removing its termination listener raises InterfaceError.
    # Fencing must survive that and rejoin under a new id.
    old_id = worker.cluster.worker_id
    pid = worker.cluster._lock_conn.get_server_pid()
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    await rejoined(worker, old_id)
    fence = worker.cluster._fence_task
    assert fence is not None and fence.done() and fence.exception() is None
    assert worker.cluster._task is not None and not worker.cluster._task.done()


async def test_no_lock_connection_means_rejoin_not_a_dead_loop(
    db: Database, worker: Worker
) -> None:
    cluster = worker.cluster
    conn, cluster._lock_conn = cluster._lock_conn, None  # as a fence that could not rejoin
    conn.remove_termination_listener(cluster._on_lock_lost)
    conn.terminate()
    await db.pool.release(conn)
    assert await cluster._renew() is False  # not an AttributeError
    await rejoined(worker, cluster.worker_id)
    assert cluster._task is not None and not cluster._task.done()


async def test_a_failing_scan_never_ends_the_loop(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = worker.cluster
    real_scan = cluster.scan
    calls = Counter[str]()

    async def scan() -> None:
        calls["scan"] += 1
        if calls["scan"] <= 2:
            raise RuntimeError("a bug in a scan")
        await real_scan()

    monkeypatch.setattr(cluster, "scan", scan)
    async with asyncio.timeout(15):
        while calls["scan"] < 4:
            await asyncio.sleep(0.05)
    assert cluster._task is not None and not cluster._task.done()
    assert cluster.problem() is None


async def test_a_dead_loop_is_restarted_and_seen(worker: Worker) -> None:
    cluster = worker.cluster
    task = cluster._task
    assert task is not None
    task.cancel()  # nothing in the loop ends it; only an outside cancel could
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert cluster.loop_restarts == 1
    restarted = cluster._task
    assert restarted is not None and restarted is not task and not restarted.done()


async def test_pool_acquire_is_bounded_while_the_server_is_down(pg: PrivatePostgres) -> None:
    db = await Database.connect(pg.dsn, min_size=1, max_size=3, acquire_timeout=1.0)
    try:
        await pg.stop("fast")
        for _ in range(5):  # more callers than connections: none waits forever
            with pytest.raises(DatabaseUnavailable):
                async with asyncio.timeout(BOUNDED), db.acquire() as conn:
                    await conn.fetchval("SELECT 1")
        with pytest.raises(DatabaseUnavailable):
            async with asyncio.timeout(BOUNDED):
                await db.ping()
        await pg.start()
        async with asyncio.timeout(BOUNDED), db.acquire() as conn:  # the pool reconnects
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        async with asyncio.timeout(BOUNDED):
            await db.close()
