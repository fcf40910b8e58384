"""Session ownership across workers on one database (wahttp.server.cluster), in one process.

Each Cluster here stands for a worker; its sessions are a set instead of sockets. The invariant
checked throughout: no session is ever run by two workers at once, and none is left unrun.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from wahttp.server.cluster import Cluster, fair_share
from wahttp.server.db import Database
from wahttp.server.store import SessionRepository


class Worker:
    """A worker whose sessions are names in a set; `log` records starts and stops in order."""

    def __init__(self, db: Database, name: str, log: list[str], **options: float) -> None:
        self.name = name
        self.sessions: set[str] = set()
        self.log = log
        self.push_names: dict[str, str | None] = {}
        self.cluster = Cluster(
            db,
            start_session=self._start,
            stop_session=self._stop,
            hosted=lambda: set(self.sessions),
            url=f"http://{name}.invalid",
            ttl=options.get("ttl", 300.0),
            interval=options.get("interval", 100.0),
        )

    async def _start(self, session_id: str, push_name: str | None) -> None:
        assert session_id not in self.sessions
        self.sessions.add(session_id)
        self.push_names[session_id] = push_name
        self.log.append(f"start {self.name} {session_id}")

    async def _stop(self, session_id: str) -> None:
        self.sessions.discard(session_id)
        self.log.append(f"stop {self.name} {session_id}")

    async def stop_all(self) -> None:
        for session_id in sorted(self.sessions):
            await self._stop(session_id)

    async def crash(self) -> None:
        """As SIGKILL: no more scans, the lock connection gone, the rows left behind."""
        cluster = self.cluster
        cluster._stopping = True
        if cluster._task is not None:
            cluster._task.cancel()
        cluster._lock_conn.remove_termination_listener(cluster._on_lock_lost)
        cluster._lock_conn.terminate()
        await cluster.db.pool.release(cluster._lock_conn)
        cluster._lock_conn = None
        self.sessions.clear()


@pytest.fixture
async def repo(db: Database) -> SessionRepository:
    return SessionRepository(db)


@pytest.fixture
async def workers(db: Database) -> AsyncIterator[list[Worker]]:
    made: list[Worker] = []
    yield made
    for worker in made:
        if not worker.cluster._stopping:
            await worker.cluster.stop(worker.stop_all)


Team = Callable[..., list[Worker]]


@pytest.fixture
def team(db: Database, workers: list[Worker]) -> Team:
    """Workers by name, sharing one log; stopped after the test."""
    log: list[str] = []

    def make(*names: str, **options: float) -> list[Worker]:
        made = [Worker(db, name, log, **options) for name in names]
        workers.extend(made)
        return made

    return make


def check_disjoint(workers: list[Worker]) -> None:
    seen: dict[str, str] = {}
    for worker in workers:
        for session_id in worker.sessions:
            assert session_id not in seen, (
                f"{session_id} runs on {seen[session_id]} and {worker.name}"
            )
            seen[session_id] = worker.name


async def make_sessions(repo: SessionRepository, n: int, prefix: str = "s") -> list[str]:
    ids = [f"{prefix}{i:02d}" for i in range(n)]
    for session_id in ids:
        await repo.create(session_id, push_name=f"name-{session_id}")
    return ids


def test_fair_share() -> None:
    assert fair_share(9, 3) == 3
    assert fair_share(9, 2) == 5
    assert fair_share(0, 2) == 0
    assert fair_share(5, 0) == 5


async def test_a_lone_worker_runs_every_session_with_its_push_name(
    db: Database, repo: SessionRepository, team: Team
) -> None:
    ids = await make_sessions(repo, 5)
    (worker,) = team("a")
    await worker.cluster.start()
    assert worker.sessions == set(ids)
    assert worker.push_names["s03"] == "name-s03"
    placements = await worker.cluster.placements()
    assert set(placements) == set(ids)
    assert all(p.live for p in placements.values())


async def test_workers_starting_together_split_the_sessions_without_overlap(
    db: Database, repo: SessionRepository, workers: list[Worker], team: Team
) -> None:
    ids = await make_sessions(repo, 30)
    team(*(f"w{i}" for i in range(3)))
    # Join all three first, so each sees the others when it computes its share.
    for worker in workers:
        await worker.cluster._join()
    await asyncio.gather(*(w.cluster.scan() for w in workers))
    check_disjoint(workers)
    await asyncio.gather(*(w.cluster.scan() for w in workers))
    check_disjoint(workers)
    assert set().union(*(w.sessions for w in workers)) == set(ids)
    assert sorted(len(w.sessions) for w in workers) == [10, 10, 10]


async def test_concurrent_claims_of_one_session_have_one_winner(
    db: Database, repo: SessionRepository, workers: list[Worker], team: Team
) -> None:
    await make_sessions(repo, 1, prefix="only")
    team(*(f"w{i}" for i in range(4)))
    for worker in workers:
        await worker.cluster._join()
    results = await asyncio.gather(*(w.cluster.claim("only00") for w in workers))
    assert sorted(results) == [False, False, False, True]
    check_disjoint(workers)
    owner = await workers[0].cluster.owner("only00")
    winner = workers[results.index(True)]
    assert owner is not None and owner.worker_id == winner.cluster.worker_id and owner.live
    # The others are told where it runs; the winner runs it itself.
    losers = [w for w in workers if w is not winner]
    assert await losers[0].cluster.elsewhere("only00") == (
        f"http://{winner.name}.invalid",
        winner.cluster.worker_id,
    )
    assert await winner.cluster.elsewhere("only00") is None


async def test_a_killed_workers_sessions_are_taken_over_at_the_next_scan(
    db: Database, repo: SessionRepository, team: Team
) -> None:
    ids = await make_sessions(repo, 10)
    a, b = team("a", "b")
    await a.cluster._join()
    await b.cluster._join()
    await a.cluster.scan()
    await b.cluster.scan()
    assert len(a.sessions) == len(b.sessions) == 5
    a_had = set(a.sessions)
    # Its row is unexpired (ttl 300 s) but its lock went with its connection: dead at once.
    await a.crash()
    # (the server ends the dead connection's backend, and with it the lock, a moment later)
    async with asyncio.timeout(10):
        while True:
            placements = await b.cluster.placements()
            if {s for s, p in placements.items() if not p.live} == a_had:
                break
            await asyncio.sleep(0.02)
    await b.cluster.scan()
    assert b.sessions == set(ids)


async def test_a_worker_that_cannot_renew_fences_itself_before_its_lease_ends(
    db: Database,
    repo: SessionRepository,
    workers: list[Worker],
    team: Team,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_sessions(repo, 6)
    (a,) = team("a", ttl=2.0, interval=0.2)
    (b,) = team("b")
    log = a.log
    await b.cluster._join()
    await a.cluster.start()
    await b.cluster.scan()
    assert a.sessions and b.sessions
    old_id = a.cluster.worker_id
    had = set(a.sessions)

    # a's renewals hang (as a database that no longer answers it would), until it fenced.
    renew = a.cluster._renew_row

    async def hang_while_old() -> bool:
        if a.cluster.worker_id == old_id:
            await asyncio.Event().wait()
        return await renew()

    monkeypatch.setattr(a.cluster, "_renew_row", hang_while_old)
    async with asyncio.timeout(20):
        while a.cluster.worker_id == old_id:
            await asyncio.sleep(0.05)
    # It stopped every session it ran, one after the other, before it ran any again.
    stops = [i for i, line in enumerate(log) if line.startswith("stop a")][: len(had)]
    assert {log[i].split()[2] for i in stops} == had
    assert not any(line.startswith("start") for line in log[stops[0] : stops[-1]])
    # Its rows went with it: between them, a (rejoined) and b run every session, none twice.
    async with asyncio.timeout(20):
        while len(a.sessions) + len(b.sessions) < 6:
            await b.cluster.scan()
            check_disjoint(workers)
            await asyncio.sleep(0.05)
    check_disjoint(workers)


async def test_a_new_worker_gets_its_share_handed_back(
    db: Database, repo: SessionRepository, workers: list[Worker], team: Team
) -> None:
    ids = await make_sessions(repo, 8)
    a, b = team("a", "b")
    log = a.log
    await a.cluster.start()
    for session_id in ids:  # only open sessions are handed back, never one being paired
        await a.cluster.record_state(session_id, "open")
    assert a.sessions == set(ids)
    await b.cluster._join()
    await a.cluster.scan()  # over its share: hands 4 back (stopped first, then the row deleted)
    assert len(a.sessions) == 4
    check_disjoint(workers)
    await b.cluster.scan()
    assert len(b.sessions) == 4
    check_disjoint(workers)
    for session_id in b.sessions:
        assert log.index(f"stop a {session_id}") < log.index(f"start b {session_id}")


async def test_a_session_being_paired_is_not_handed_back(
    db: Database, repo: SessionRepository, team: Team
) -> None:
    await make_sessions(repo, 4)
    a, b = team("a", "b")
    await a.cluster.start()
    for session_id in sorted(a.sessions):
        await a.cluster.record_state(session_id, "awaiting_pairing")
    await b.cluster._join()
    await a.cluster.scan()
    assert len(a.sessions) == 4


async def test_graceful_stop_stops_the_sockets_before_others_take_over(
    db: Database, repo: SessionRepository, team: Team
) -> None:
    ids = await make_sessions(repo, 6)
    a, b = team("a", "b")
    await a.cluster.start()
    await b.cluster.start()
    await a.cluster.scan()
    rows_while_stopping: list[int] = []

    async def stop_sessions() -> None:
        async with db.acquire() as conn:
            rows_while_stopping.append(
                await conn.fetchval(
                    "SELECT count(*) FROM wahttp_session_owners WHERE worker_id = $1",
                    a.cluster.worker_id,
                )
            )
        await a.stop_all()

    a_had = len(a.sessions)
    await a.cluster.stop(stop_sessions)
    assert rows_while_stopping == [a_had]  # still owned while its sockets closed
    await b.cluster.scan()
    assert b.sessions == set(ids)


async def test_a_deleted_session_is_dropped_by_its_owner(
    db: Database, repo: SessionRepository, team: Team
) -> None:
    await make_sessions(repo, 3)
    (a,) = team("a")
    log = a.log
    await a.cluster.start()
    await repo.delete("s01")  # e.g. through another worker while this one was unreachable
    await a.cluster.scan()
    assert a.sessions == {"s00", "s02"}
    assert "stop a s01" in log
