"""One contract for every AuthStore backend (memory, PostgreSQL, embedded PostgreSQL), plus the
PostgreSQL-only duties: the original's auth_json rows, export, and migrations."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dbtools import (
    ORIGINAL_CREATE_TABLE,
    ORIGINAL_CREATE_TABLE_NAIVE,
    ORIGINAL_UPSERT,
    baileys_auth_json,
    fresh_schema,
    node_available,
)

from wahttp.server.db import Database, _socket_dir, load_migrations, start_embedded
from wahttp.server.store import (
    PostgresAuthStore,
    SessionNotFound,
    SessionRepository,
    export_auth_json,
)
from wahttp.wa.auth.bufferjson import from_json, to_json
from wahttp.wa.auth.creds import Creds, Me, new_creds
from wahttp.wa.auth.store import AuthStore, KeyValue, MemoryAuthStore
from wahttp.wa.errors import StoreError

SESSION = "contract-session"


@pytest.fixture(params=["memory", "postgres", "embedded"])
def backend_dsn(request: pytest.FixtureRequest) -> str | None:
    """None for the memory store, else the server's DSN (resolved outside any event loop)."""
    if request.param == "memory":
        return None
    dsn: str = request.getfixturevalue(f"{request.param}_dsn")
    return dsn


@pytest.fixture
async def store(backend_dsn: str | None) -> AsyncIterator[AuthStore]:
    if backend_dsn is None:
        yield MemoryAuthStore()
        return
    async with fresh_schema(backend_dsn) as db:
        await SessionRepository(db).create(SESSION)
        yield PostgresAuthStore(db, SESSION)


def pre_key(seed: int) -> dict[str, bytes]:
    return {"private": bytes([seed % 256]) * 32, "public": bytes([(seed + 1) % 256]) * 32}


# --- the contract ------------------------------------------------------------------------


async def test_creds_round_trip(store: AuthStore) -> None:
    assert await store.load_creds() is None
    creds = new_creds()
    creds.me = Me("15550001111:2@s.whatsapp.net", "98765432100:2@lid", "Tester")
    creds.routing_info = b"\x00\x01\xff"
    await store.save_creds(creds)
    creds.registration_id += 1  # a later in-place edit is not saved
    loaded = await store.load_creds()
    assert loaded is not None
    assert loaded.registration_id == creds.registration_id - 1
    creds.registration_id -= 1
    assert loaded.to_json() == creds.to_json()


async def test_keys_across_categories(store: AuthStore) -> None:
    values: dict[str, dict[str, Any]] = {
        "pre-key": {"1": pre_key(1), "2": pre_key(2)},
        "session": {"15550002222.0": b"\x01" * 80},
        "sender-key-memory": {"120363@g.us": {"15550002222:1@s.whatsapp.net": True}},
        "app-state-sync-version": {
            "regular_high": {"version": 3, "hash": b"\x02" * 128, "indexValueMap": {}}
        },
        "lid-mapping": {"15550002222": "98765432101"},
        "device-list": {"15550002222": ["0", "1"]},
    }
    await store.set(values)
    for category, expected in values.items():
        assert await store.get(category, [*expected, "missing"]) == expected
    # Same id, different category: separate keys.
    assert await store.get("session", ["1"]) == {}
    await store.set({"pre-key": {"1": None, "3": pre_key(3)}, "session": {"15550002222.0": None}})
    assert await store.get("pre-key", ["1", "2", "3"]) == {"2": pre_key(2), "3": pre_key(3)}
    assert await store.get("session", ["15550002222.0"]) == {}
    await store.set({"pre-key": {"2": pre_key(20)}})  # overwrite
    assert await store.get("pre-key", ["2"]) == {"2": pre_key(20)}
    assert await store.get("pre-key", []) == {}


async def test_ids_with_colon_and_slash(store: AuthStore) -> None:
    sender = "120363000000@g.us::15550002222@s.whatsapp.net::0"
    sync_key = "AAAAAB/x+w=="
    await store.set(
        {"sender-key": {sender: b"\x05" * 40}, "app-state-sync-key": {sync_key: {"a": 1}}}
    )
    assert await store.get("sender-key", [sender]) == {sender: b"\x05" * 40}
    assert await store.get("app-state-sync-key", [sync_key]) == {sync_key: {"a": 1}}
    await store.set({"sender-key": {sender: None}})
    assert await store.get("sender-key", [sender]) == {}


async def test_clear(store: AuthStore) -> None:
    await store.save_creds(new_creds())
    await store.set({"pre-key": {"1": pre_key(1)}, "session": {"a.0": b"x"}})
    await store.clear()
    assert await store.load_creds() is None
    assert await store.get("pre-key", ["1"]) == {}
    assert await store.get("session", ["a.0"]) == {}
    await store.set({"pre-key": {"1": pre_key(9)}})  # usable again after clearing
    assert await store.get("pre-key", ["1"]) == {"1": pre_key(9)}


async def test_812_pre_keys_in_one_call(store: AuthStore) -> None:
    keys: dict[str, KeyValue | None] = {str(i): pre_key(i) for i in range(1, 813)}
    started = time.monotonic()
    await store.set({"pre-key": keys})
    assert time.monotonic() - started < 5
    got = await store.get("pre-key", list(keys))
    assert got == keys
    # One more key costs one small write, whatever is already stored.
    started = time.monotonic()
    await store.set({"pre-key": {"813": pre_key(813)}})
    assert time.monotonic() - started < 1


async def test_concurrent_sets(store: AuthStore) -> None:
    # Disjoint writers all land.
    await asyncio.gather(*(store.set({"session": {f"{i}.0": bytes([i]) * 8}}) for i in range(40)))
    got = await store.get("session", [f"{i}.0" for i in range(40)])
    assert got == {f"{i}.0": bytes([i]) * 8 for i in range(40)}

    # Overlapping writers, each touching the same keys in its own order: no deadlock, and each
    # key ends with one writer's whole value.
    ids = [str(i) for i in range(30)]

    async def writer(n: int) -> None:
        order = ids if n % 2 else list(reversed(ids))
        await store.set({"pre-key": {i: pre_key(n) for i in order}})

    await asyncio.gather(*(writer(n) for n in range(12)))
    final = await store.get("pre-key", ids)
    assert set(final) == set(ids)
    assert all(v in [pre_key(n) for n in range(12)] for v in final.values())


# --- PostgreSQL only ---------------------------------------------------------------------


def legacy_auth_json(creds: Creds) -> dict[str, Any]:
    """An original-style auth_json built in Python: {file name: parsed file content}."""
    return {
        "creds.json": to_json(creds.to_json()),
        "pre-key-1.json": to_json(pre_key(1)),
        "pre-key-2.json": to_json(pre_key(2)),
        "session-15550002222.0.json": to_json(b"\x07" * 50),
        "sender-key-120363@g.us--15550002222@s.whatsapp.net--0.json": to_json(b"\x08" * 40),
        "sender-key-memory-120363@g.us.json": {"15550002222:1@s.whatsapp.net": True},
        "app-state-sync-key-AAAAAB__x+w==.json": {"keyData": "AAEC", "timestamp": "1700000000"},
        "lid-mapping-15550002222.json": "98765432101",
    }


async def insert_original_row(db: Database, session_id: str, auth_json: Any) -> None:
    async with db.acquire() as conn:
        await conn.execute(ORIGINAL_UPSERT, session_id, auth_json)


async def test_legacy_row_is_converted(db: Database) -> None:
    creds = new_creds()
    creds.me = Me("15550001111:3@s.whatsapp.net", None, "Legacy")
    auth_json = legacy_auth_json(creds)
    await insert_original_row(db, "legacy", auth_json)
    assert (await SessionRepository(db).get("legacy")) is not None

    store = PostgresAuthStore(db, "legacy")
    loaded = await store.load_creds()
    assert loaded is not None and loaded.to_json() == creds.to_json()
    assert await store.get("pre-key", ["1", "2"]) == {"1": pre_key(1), "2": pre_key(2)}
    sender = "120363@g.us::15550002222@s.whatsapp.net::0"
    assert await store.get("sender-key", [sender]) == {sender: b"\x08" * 40}
    assert await store.get("sender-key-memory", ["120363@g.us"]) == {
        "120363@g.us": {"15550002222:1@s.whatsapp.net": True}
    }
    assert (await store.get("app-state-sync-key", ["AAAAAB/x+w=="]))["AAAAAB/x+w=="][
        "timestamp"
    ] == "1700000000"
    assert await store.get("lid-mapping", ["15550002222"]) == {"15550002222": "98765432101"}

    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT auth_format, auth_json FROM sessions WHERE id = 'legacy'")
        count = await conn.fetchval("SELECT count(*) FROM auth_keys WHERE session_id = 'legacy'")
    assert row["auth_format"] == "keys"
    assert row["auth_json"] == auth_json  # kept as it was
    assert count == 7

    # Writes after conversion go to our rows; a new store does not convert again.
    await store.set({"pre-key": {"1": None}})
    again = PostgresAuthStore(db, "legacy")
    assert await again.get("pre-key", ["1", "2"]) == {"2": pre_key(2)}

    exported = await export_auth_json(db, "legacy")
    expected = dict(auth_json)
    del expected["pre-key-1.json"]
    assert exported == expected


async def test_legacy_row_without_auth(db: Database) -> None:
    await insert_original_row(db, "bare", None)
    store = PostgresAuthStore(db, "bare")
    assert await store.load_creds() is None
    assert await store.export_auth_json() == {}
    await store.save_creds(new_creds())
    assert (await SessionRepository(db).get("bare")) is not None


async def test_legacy_file_contents_as_text(db: Database) -> None:
    # Tolerated too: each file's raw text rather than its parsed JSON.
    import json

    creds = new_creds()
    files = legacy_auth_json(creds)
    await insert_original_row(db, "text", {k: json.dumps(v) for k, v in files.items()})
    store = PostgresAuthStore(db, "text")
    loaded = await store.load_creds()
    assert loaded is not None and loaded.to_json() == creds.to_json()
    assert await store.get("lid-mapping", ["15550002222"]) == {"15550002222": "98765432101"}


async def test_concurrent_conversion_happens_once(db: Database) -> None:
    creds = new_creds()
    await insert_original_row(db, "race", legacy_auth_json(creds))
    stores = [PostgresAuthStore(db, "race") for _ in range(5)]
    results = await asyncio.gather(*(s.get("pre-key", ["1", "2"]) for s in stores))
    assert all(r == {"1": pre_key(1), "2": pre_key(2)} for r in results)


@pytest.mark.skipif(not node_available(), reason="node and tests/interop/node_modules needed")
async def test_baileys_folder_as_legacy_row(db: Database, tmp_path: Path) -> None:
    auth_json, ids = await baileys_auth_json(tmp_path / "auth")
    await insert_original_row(db, "baileys", auth_json)
    store = PostgresAuthStore(db, "baileys")

    creds = await store.load_creds()
    assert creds is not None and creds.me is not None
    assert creds.me.id == "15550001111:3@s.whatsapp.net"
    assert creds.to_json() == Creds.from_json(from_json(auth_json["creds.json"])).to_json()
    for category, category_ids in ids.items():
        got = await store.get(category, category_ids)
        assert set(got) == set(category_ids), category
        for key_id in category_ids:
            name = f"{category}-{key_id.replace('/', '__').replace(':', '-')}.json"
            assert got[key_id] == from_json(auth_json[name]), name
    assert await store.export_auth_json() == auth_json


async def test_export_and_import(db: Database) -> None:
    await SessionRepository(db).create("a")
    await SessionRepository(db).create("b")
    a = PostgresAuthStore(db, "a")
    creds = new_creds()
    await a.save_creds(creds)
    await a.set(
        {"sender-key": {"g@g.us::u@s.whatsapp.net::0": b"\x01"}, "pre-key": {"5": pre_key(5)}}
    )
    exported = await a.export_auth_json()
    assert exported == {
        "creds.json": to_json(creds.to_json()),
        "pre-key-5.json": to_json(pre_key(5)),
        "sender-key-g@g.us--u@s.whatsapp.net--0.json": to_json(b"\x01"),
    }
    assert await a.all_keys() == {
        "pre-key": {"5": pre_key(5)},
        "sender-key": {"g@g.us--u@s.whatsapp.net--0": b"\x01"},
    }
    b = PostgresAuthStore(db, "b")
    await b.set({"pre-key": {"99": pre_key(99)}})
    await b.import_auth_json(exported)
    assert await b.export_auth_json() == exported
    assert await b.get("pre-key", ["5", "99"]) == {"5": pre_key(5)}


async def test_store_of_missing_session(db: Database) -> None:
    store = PostgresAuthStore(db, "nope")
    with pytest.raises(SessionNotFound):
        await store.load_creds()
    with pytest.raises(SessionNotFound):
        await store.set({"pre-key": {"1": pre_key(1)}})
    with pytest.raises(SessionNotFound):
        await export_auth_json(db, "nope")


async def test_key_rows_cascade_with_session(db: Database) -> None:
    repo = SessionRepository(db)
    await repo.create("gone")
    await PostgresAuthStore(db, "gone").set({"pre-key": {"1": pre_key(1)}})
    assert await repo.delete("gone")
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM auth_keys") == 0


# --- migrations --------------------------------------------------------------------------


async def test_migrations_are_idempotent(db_dsn: str) -> None:
    async with fresh_schema(db_dsn, migrate=False) as db:
        versions = [m.version for m in load_migrations()]
        assert versions == sorted(versions) and versions[:2] == [1, 2]
        assert await db.migrate() == versions
        assert await db.migrate() == []
        async with db.acquire() as conn:
            recorded = await conn.fetch("SELECT version FROM wahttp_schema_version ORDER BY 1")
        assert [r["version"] for r in recorded] == versions


async def test_concurrent_migrations(db_dsn: str) -> None:
    async with fresh_schema(db_dsn, migrate=False) as first:
        schema = await first.pool.fetchval("SELECT current_schema()")
        others = [
            await Database.connect(db_dsn, max_size=2, server_settings={"search_path": schema})
            for _ in range(3)
        ]
        try:
            results = await asyncio.gather(first.migrate(), *(o.migrate() for o in others))
        finally:
            for other in others:
                await other.close()
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in load_migrations()]


@pytest.mark.parametrize("create_sql", [ORIGINAL_CREATE_TABLE, ORIGINAL_CREATE_TABLE_NAIVE])
async def test_migrating_the_originals_database_keeps_its_rows(
    db_dsn: str, create_sql: str
) -> None:
    creds = new_creds()
    async with fresh_schema(db_dsn, migrate=False) as db:
        async with db.acquire() as conn:
            await conn.execute(create_sql)
        await insert_original_row(db, "old-1", legacy_auth_json(creds))
        await insert_original_row(db, "old-2", None)
        await db.migrate()
        await db.migrate()

        rows = await SessionRepository(db).list()
        assert [(r.id, r.has_auth) for r in rows] == [("old-1", True), ("old-2", False)]
        assert all(r.created_at.tzinfo is not None for r in rows)
        loaded = await PostgresAuthStore(db, "old-1").load_creds()
        assert loaded is not None and loaded.to_json() == creds.to_json()
        # The original can still write its rows (its upsert and its columns still work).
        await insert_original_row(db, "old-3", {"creds.json": to_json(creds.to_json())})
        assert (await SessionRepository(db).get("old-3")) is not None


# --- the embedded server -----------------------------------------------------------------


async def test_embedded_server_is_reused_adopted_and_restarted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dsn, first = await start_embedded(data, durable=False)
    try:
        assert first.owns_server
        if os.geteuid() == 0:
            assert first.run_as_user is not None
        again_dsn, again = await start_embedded(data, durable=False)
        assert again_dsn == dsn and not again.owns_server
        await again.stop()  # not its to stop
        db = await Database.connect(dsn)
        try:
            await db.migrate()
            await SessionRepository(db).create("persisted")
        finally:
            await db.close()

        # As if the starter had crashed: the next start adopts the running server.
        dead = await asyncio.create_subprocess_exec("true")
        await dead.wait()
        (data / "postgres.owner").write_text(str(dead.pid))
        adopted_dsn, adopted = await start_embedded(data, durable=False)
        assert adopted_dsn == dsn and adopted.owns_server
        await adopted.stop()
    finally:
        await first.stop()
    assert not (data / "postgres" / "postmaster.pid").exists()

    dsn, second = await start_embedded(data, durable=False)  # no initdb this time
    try:
        assert second.owns_server
        db = await Database.connect(dsn)
        try:
            assert await db.migrate() == []
            assert (await SessionRepository(db).get("persisted")) is not None
        finally:
            await db.close()
    finally:
        await second.stop()


def test_socket_folder_for_long_paths(tmp_path: Path) -> None:
    short = tmp_path / "pg"
    assert _socket_dir(short, None) == short
    long = tmp_path / ("x" * 120) / "postgres"
    fallback = _socket_dir(long, None)
    try:
        assert fallback.parent == Path(tempfile.gettempdir())
        assert fallback.name.startswith("wahttp-pg-")
        assert fallback.stat().st_mode & 0o777 == 0o700
        assert _socket_dir(long, None) == fallback  # stable
        fallback.chmod(0o755)  # e.g. planted by someone else: refused
        with pytest.raises(StoreError):
            _socket_dir(long, None)
    finally:
        shutil.rmtree(fallback, ignore_errors=True)
