"""Encryption at rest of auth state, on both PostgreSQL backends: no clear key material in the
columns or the folder mirror with a key, clear and legacy values still read and sealed on write,
`wahttp auth rotate-key`, clear errors for a wrong or missing key, and the service end to end."""

from __future__ import annotations

import argparse
import base64
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from dbtools import ORIGINAL_UPSERT
from servicetools import Service, service_settings, wait_status
from simtools import new_phone

from wahttp.server.at_rest import CLEAR_WARNING
from wahttp.server.auth_cli import run_auth_command
from wahttp.server.db import Database
from wahttp.server.settings import Settings
from wahttp.server.store import PostgresAuthStore, SessionRepository, export_auth_json
from wahttp.sim.runner import SimHandle
from wahttp.wa.auth.bufferjson import b64decode, js_json_loads, to_json
from wahttp.wa.auth.creds import Creds, Me, new_creds
from wahttp.wa.auth.mirror import FolderMirror
from wahttp.wa.auth.multifile import read_folder
from wahttp.wa.auth.sealing import SEALS_PER_SUBKEY, SealContext, Sealer, SealError, is_sealed
from wahttp.wa.auth.store import AuthStore
from wahttp.wa.crypto import KeyPair

KEY_A = os.urandom(32)
KEY_B = os.urandom(32)
A = Sealer([("key-a", KEY_A)])
B_THEN_A = Sealer([("key-b", KEY_B), ("key-a", KEY_A)])
B = Sealer([("key-b", KEY_B)])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def forms(secret: bytes) -> list[bytes]:
    """The ways a secret could show up in a column or a file: raw, base64 (both), hex."""
    return [
        secret,
        b64(secret).encode(),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
        secret.hex().encode(),
        secret.hex().upper().encode(),
    ]


def creds_secrets(creds: Creds) -> list[bytes]:
    return [
        creds.noise_key.private,
        creds.pairing_ephemeral_key.private,
        creds.signed_identity_key.private,
        creds.signed_pre_key.key_pair.private,
        b64decode(creds.adv_secret_key),
    ]


def assert_absent(secrets: Iterable[bytes], dump: bytes) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in dump, "clear key material in the stored state"


def assert_present(secret: bytes, dump: bytes) -> None:
    assert any(form in dump for form in forms(secret))


async def raw_dump(db: Database, *folders: Path) -> bytes:
    """Every auth column as PostgreSQL holds it, and every file in the folders, as bytes."""
    async with db.acquire() as conn:
        sessions = await conn.fetch("SELECT creds::text AS c, auth_json::text AS j FROM sessions")
        keys = await conn.fetch("SELECT value::text AS v FROM auth_keys")
    parts = [r["c"] or "" for r in sessions] + [r["j"] or "" for r in sessions]
    parts += [r["v"] for r in keys]
    out = "\n".join(parts).encode()
    for folder in folders:
        if folder.exists():
            out += b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
    return out


def pre_keys(count: int) -> dict[str, dict[str, bytes]]:
    pairs = [KeyPair.generate() for _ in range(count)]
    return {str(i + 1): {"private": p.private, "public": p.public} for i, p in enumerate(pairs)}


def session_record(root: bytes, chain: bytes) -> dict[str, Any]:
    """Shaped like libsignal's SessionRecord JSON (keys as base64 strings)."""
    return {
        "_sessions": {
            b64(b"\x05" + os.urandom(32)): {
                "currentRatchet": {
                    "rootKey": b64(root),
                    "ephemeralKeyPair": {"privKey": b64(chain), "pubKey": b64(os.urandom(33))},
                },
                "indexInfo": {"closed": -1},
            }
        },
        "version": "v1",
    }


def linked_creds() -> Creds:
    creds = new_creds()
    creds.me = Me("15550001111:2@s.whatsapp.net", "98765432100:2@lid", "Sealed")
    return creds


async def write_state(store: AuthStore) -> tuple[Creds, dict[str, Any], list[bytes]]:
    """Creds, five pre-keys and a Signal session; returns them and every secret in them."""
    creds = linked_creds()
    keys: dict[str, Any] = {"pre-key": pre_keys(5)}
    root, chain = os.urandom(32), os.urandom(32)
    keys["session"] = {"15550002222.0": session_record(root, chain)}
    await store.save_creds(creds)
    await store.set(keys)
    secrets = creds_secrets(creds) + [v["private"] for v in keys["pre-key"].values()]
    return creds, keys, [*secrets, root, chain]


async def new_session(db: Database, session_id: str) -> None:
    await SessionRepository(db).create(session_id)


# --- the store ------------------------------------------------------------------------------


async def test_no_clear_key_material_with_a_key(db: Database, tmp_path: Path) -> None:
    await new_session(db, "alice")
    folder = tmp_path / "alice"
    store = FolderMirror(PostgresAuthStore(db, "alice", A), folder, sealer=A)
    creds, keys, secrets = await write_state(store)

    dump = await raw_dump(db, folder)
    assert_absent(secrets, dump)
    async with db.acquire() as conn:
        assert is_sealed(await conn.fetchval("SELECT creds FROM sessions"))
        values = await conn.fetch("SELECT value FROM auth_keys")
    assert len(values) == 6 and all(A.is_current(r["value"]) for r in values)
    assert all(is_sealed(js_json_loads(p.read_text())) for p in folder.iterdir())

    # Read back, through a fresh store and from the folder.
    again = PostgresAuthStore(db, "alice", A)
    loaded = await again.load_creds()
    assert loaded is not None and loaded.to_json() == creds.to_json()
    assert await again.get("pre-key", list(keys["pre-key"])) == keys["pre-key"]
    assert await again.get("session", ["15550002222.0"]) == keys["session"]
    state = read_folder(folder, sealer=A)
    assert state.creds.to_json() == creds.to_json() and state.keys == keys

    # Exports are in clear (for Baileys): the same search finds the keys there.
    exported = str(await again.export_auth_json()).encode()
    assert all(any(f in exported for f in forms(s)) for s in secrets)
    assert (
        await SessionRepository(db, A).export_auth_json("alice") == await again.export_auth_json()
    )


async def test_sealed_writes_cost_the_same_however_many_keys(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealing work (AES-GCM seals, HKDF derivations) grows with the keys written, not with
    the keys stored: a one-key write after 812 costs what a one-key write costs."""
    counts: Counter[str] = Counter()
    real_seal, real_derive = Sealer.seal, Sealer._derive

    def seal(self: Sealer, plaintext: bytes, context: SealContext) -> dict[str, Any]:
        counts["seal"] += 1
        return real_seal(self, plaintext, context)

    def derive(self: Sealer, kid: str, salt: bytes) -> AESGCM:
        counts["derive"] += 1
        return real_derive(self, kid, salt)

    monkeypatch.setattr(Sealer, "seal", seal)
    monkeypatch.setattr(Sealer, "_derive", derive)
    await new_session(db, "many")
    store = FolderMirror(PostgresAuthStore(db, "many", A), tmp_path / "many", sealer=A)
    keys = pre_keys(812)
    await store.set({"pre-key": dict(keys)})
    # Each key sealed once for the database and once for the folder; few derivations.
    assert counts["seal"] == 2 * 812
    assert counts["derive"] <= 2 * 812 // SEALS_PER_SUBKEY + 2
    counts.clear()
    await store.set({"pre-key": {"813": keys["1"]}})
    assert counts["seal"] == 2 and counts["derive"] <= 1
    counts.clear()
    assert await store.get("pre-key", list(keys)) == keys
    assert counts["seal"] == 0 and counts["derive"] <= 2 * 812 // SEALS_PER_SUBKEY + 2


async def test_clear_and_legacy_values_read_and_sealed_on_write(db: Database) -> None:
    # Written without a key: in clear (the dump finds the keys, so the search works).
    await new_session(db, "plain")
    creds, keys, secrets = await write_state(PostgresAuthStore(db, "plain"))
    assert_present(secrets[0], await raw_dump(db))

    store = PostgresAuthStore(db, "plain", A)
    loaded = await store.load_creds()
    assert loaded is not None and loaded.to_json() == creds.to_json()
    assert await store.get("pre-key", ["1", "2"]) == {k: keys["pre-key"][k] for k in ("1", "2")}
    # Written again: sealed; the rest stays readable as it is.
    await store.save_creds(creds)
    await store.set({"pre-key": {"1": keys["pre-key"]["1"]}})
    async with db.acquire() as conn:
        assert is_sealed(await conn.fetchval("SELECT creds FROM sessions WHERE id = 'plain'"))
        rows = await conn.fetch(
            "SELECT key_id, value FROM auth_keys"
            " WHERE session_id = 'plain' AND category = 'pre-key'"
        )
    sealed = {r["key_id"]: is_sealed(r["value"]) for r in rows}
    assert sealed == {"1": True, "2": False, "3": False, "4": False, "5": False}
    assert await store.all_keys() == keys

    # A row of the Node.js original: read under a key, converted sealed, its clear copy gone.
    legacy = linked_creds()
    secret = os.urandom(32)
    auth_json = {
        "creds.json": to_json(legacy.to_json()),
        "pre-key-7.json": to_json({"private": secret, "public": os.urandom(32)}),
    }
    async with db.acquire() as conn:
        await conn.execute(ORIGINAL_UPSERT, "legacy", auth_json)
    store = PostgresAuthStore(db, "legacy", A)
    loaded = await store.load_creds()
    assert loaded is not None and loaded.to_json() == legacy.to_json()
    assert (await store.get("pre-key", ["7"]))["7"]["private"] == secret
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT auth_format, auth_json FROM sessions WHERE id = 'legacy'")
    assert row["auth_format"] == "keys" and row["auth_json"] is None
    assert_absent([*creds_secrets(legacy), secret], await raw_dump(db))
    row = await SessionRepository(db).get("legacy")
    assert row is not None and row.has_auth


async def test_wrong_or_missing_key_is_a_clear_error(db: Database) -> None:
    await new_session(db, "alice")
    _, _, secrets = await write_state(PostgresAuthStore(db, "alice", A))
    other_key_same_id = Sealer([("key-a", KEY_B)])
    cases: list[tuple[Sealer | None, str]] = [
        (other_key_same_id, "cannot decrypt the creds of session 'alice'"),
        (B, "key id 'key-a', which is not configured"),
        (None, "encrypted at rest .* no encryption key is configured"),
    ]
    for sealer, message in cases:
        store = PostgresAuthStore(db, "alice", sealer)
        with pytest.raises(SealError, match=message) as info:
            await store.load_creds()
        assert all(b64(s) not in str(info.value) for s in secrets)
        with pytest.raises(SealError):
            await store.get("pre-key", ["1"])
        with pytest.raises(SealError):
            await store.all_keys()
        with pytest.raises(SealError):
            await export_auth_json(db, "alice", sealer)


async def test_swapped_values_do_not_open(db: Database) -> None:
    for session_id in ("alice", "bob"):
        await new_session(db, session_id)
        await write_state(PostgresAuthStore(db, session_id, A))
    async with db.acquire() as conn:
        # Two pre-keys of one session trade places, and two sessions trade creds.
        await conn.execute(
            "UPDATE auth_keys SET value = CASE key_id WHEN '1' THEN"
            " (SELECT value FROM auth_keys WHERE session_id = 'alice' AND key_id = '2')"
            " ELSE (SELECT value FROM auth_keys WHERE session_id = 'alice' AND key_id = '1') END"
            " WHERE session_id = 'alice' AND category = 'pre-key' AND key_id IN ('1', '2')"
        )
        await conn.execute(
            "UPDATE sessions SET creds = CASE id WHEN 'alice' THEN"
            " (SELECT creds FROM sessions WHERE id = 'bob')"
            " ELSE (SELECT creds FROM sessions WHERE id = 'alice') END"
        )
    alice = PostgresAuthStore(db, "alice", A)
    with pytest.raises(SealError, match="pre-key '1' of session 'alice'"):
        await alice.get("pre-key", ["1"])
    with pytest.raises(SealError, match="altered or moved"):
        await alice.get("pre-key", ["2"])
    assert set(await alice.get("pre-key", ["3", "4"])) == {"3", "4"}  # untouched rows are fine
    for session_id in ("alice", "bob"):
        with pytest.raises(SealError, match=f"the creds of session '{session_id}'"):
            await PostgresAuthStore(db, session_id, A).load_creds()


# --- wahttp auth rotate-key / import / export -----------------------------------------------


@pytest.fixture
async def url_db(database_url: str) -> AsyncIterator[Database]:
    db = await Database.connect(database_url)
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()


def cli_settings(database_url: str, tmp: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "WAHTTP_DATA_DIR": tmp / "data",
        "WAHTTP_AUTH_DIR": tmp / "auth_sessions",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)


def auth(command: str, **fields: Any) -> argparse.Namespace:
    return argparse.Namespace(auth_command=command, **fields)


async def test_rotate_key_import_and_export(
    database_url: str, url_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, mirror = url_db, tmp_path / "auth_sessions"
    await new_session(db, "sealed")
    store = FolderMirror(PostgresAuthStore(db, "sealed", A), mirror / "sealed", sealer=A)
    creds, keys, secrets = await write_state(store)
    await new_session(db, "clear")
    clear_creds, _, clear_secrets = await write_state(
        FolderMirror(PostgresAuthStore(db, "clear"), mirror / "clear")
    )
    legacy = linked_creds()
    async with db.acquire() as conn:
        await conn.execute(ORIGINAL_UPSERT, "legacy", {"creds.json": to_json(legacy.to_json())})
    all_secrets = [*secrets, *clear_secrets, *creds_secrets(legacy)]

    key_file = tmp_path / "keys"
    key_file.write_text(f"key-b:{b64(KEY_B)}\nkey-a:{KEY_A.hex()}\n")
    key_file.chmod(0o600)
    rotating = cli_settings(database_url, tmp_path, WAHTTP_ENCRYPTION_KEY_FILE=key_file)
    capsys.readouterr()
    assert await run_auth_command(auth("rotate-key"), rotating) == 0
    out = capsys.readouterr().out
    assert "session 'sealed': 7 values, 7 re-sealed (7 were under key id 'key-a')" in out
    assert "session 'clear': 7 values, 7 re-sealed (7 were in clear)" in out
    assert "converted its Node.js auth_json" in out
    assert "3 of 3 sessions now sealed under key id 'key-b'" in out
    assert_absent(all_secrets, await raw_dump(db, *mirror.iterdir()))
    async with db.acquire() as conn:
        kids = {r["k"] for r in await conn.fetch("SELECT value->>'kid' AS k FROM auth_keys")}
        kids |= {r["k"] for r in await conn.fetch("SELECT creds->>'kid' AS k FROM sessions")}
    assert kids == {"key-b"}
    for folder in mirror.iterdir():
        assert all(B.is_current(js_json_loads(p.read_text())) for p in folder.iterdir())

    # Again: nothing left to do.
    assert await run_auth_command(auth("rotate-key"), rotating) == 0
    assert "3 of 3 sessions now sealed under key id 'key-b': 15 values, 0 re-sealed" in (
        capsys.readouterr().out
    )

    # Key A can go now.
    only_b = cli_settings(database_url, tmp_path, WAHTTP_ENCRYPTION_KEY=f"key-b:{b64(KEY_B)}")
    loaded = await PostgresAuthStore(db, "sealed", B).load_creds()
    assert loaded is not None and loaded.to_json() == creds.to_json()
    assert await PostgresAuthStore(db, "sealed", B).all_keys() == keys
    assert read_folder(mirror / "clear", sealer=B).creds.to_json() == clear_creds.to_json()
    with pytest.raises(SealError, match="key id 'key-b', which is not configured"):
        await PostgresAuthStore(db, "sealed", A).load_creds()

    # Export: a clear Baileys folder. Import: a sealed mirror folder opens, and is stored sealed.
    exported = tmp_path / "export"
    assert await run_auth_command(auth("export", session_id="sealed", folder=exported), only_b) == 0
    assert read_folder(exported).keys == keys
    assert_present(secrets[0], b"".join(p.read_bytes() for p in exported.iterdir()))
    backup = tmp_path / "backup" / "sealed"
    backup.parent.mkdir()
    os.rename(mirror / "sealed", backup)
    assert await run_auth_command(auth("import", folder=backup, id="restored"), only_b) == 0
    restored = await PostgresAuthStore(db, "restored", B).load_creds()
    assert restored is not None and restored.to_json() == creds.to_json()
    assert_absent(secrets, await raw_dump(db, mirror / "restored"))
    assert read_folder(mirror / "restored", sealer=B).keys == keys

    # Without the key, or with a key that is not there, clear errors.
    capsys.readouterr()
    no_key = cli_settings(database_url, tmp_path)
    assert await run_auth_command(auth("rotate-key"), no_key) == 2
    assert "no encryption key" in capsys.readouterr().err
    assert (
        await run_auth_command(auth("export", session_id="sealed", folder=tmp_path / "x"), no_key)
        == 1
    )
    assert "no encryption key is configured" in capsys.readouterr().err
    only_a = cli_settings(database_url, tmp_path, WAHTTP_ENCRYPTION_KEY=f"key-a:{b64(KEY_A)}")
    assert await run_auth_command(auth("rotate-key"), only_a) == 1
    err = capsys.readouterr().err
    assert "session 'sealed': error:" in err and "'key-b', which is not configured" in err
    bad = cli_settings(database_url, tmp_path, WAHTTP_ENCRYPTION_KEY="c2hvcnQ=")
    assert await run_auth_command(auth("rotate-key"), bad) == 2
    assert "c2hvcnQ=" not in capsys.readouterr().err


# --- the service ----------------------------------------------------------------------------


async def pair(api: httpx.AsyncClient, admin: httpx.AsyncClient, session_id: str) -> str:
    number = await new_phone(admin)
    resp = await api.post(f"/sessions/{session_id}/pair-request", json={"number": f"+{number}"})
    assert resp.status_code == 200, resp.text
    code = resp.json()["pairingCode"]
    entered = await admin.post(f"/phones/{number}/pairing-code", json={"code": code})
    assert entered.status_code == 200, entered.text
    return str((await wait_status(api, session_id, "open"))["jid"])


async def test_service_with_a_key_pairs_and_logs_in_after_a_restart(
    sim: SimHandle,
    admin: httpx.AsyncClient,
    *,
    database_url: str,
    url_db: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wahttp.server.at_rest")
    settings = service_settings(
        sim, database_url, tmp_path, WAHTTP_ENCRYPTION_KEY=f"key-a:{b64(KEY_A)}"
    )
    service = Service(settings)
    await service.start()
    try:
        async with service.http() as api:
            assert (await api.post("/sessions", json={"id": "enc"})).status_code == 201
            jid = await pair(api, admin, "enc")
            await service.restart()
            assert (await wait_status(api, "enc", "open"))["jid"] == jid
    finally:
        await service.stop()
    assert CLEAR_WARNING not in caplog.text
    assert "sealing under key id 'key-a'" in caplog.text and b64(KEY_A) not in caplog.text

    store = PostgresAuthStore(url_db, "enc", A)
    creds = await store.load_creds()
    assert creds is not None and creds.is_linked
    keys = await store.all_keys()
    assert keys["pre-key"]
    secrets = creds_secrets(creds) + [v["private"] for v in keys["pre-key"].values()]
    folder = tmp_path / "auth_sessions" / "enc"
    assert_absent(secrets, await raw_dump(url_db, folder))
    async with url_db.acquire() as conn:
        clear = await conn.fetchval(
            "SELECT count(*) FROM auth_keys WHERE NOT (jsonb_typeof(value) = 'object'"
            " AND value ? 'wahttp:sealed')"
        )
    assert clear == 0
    assert read_folder(folder, sealer=A).creds.to_json() == creds.to_json()

    # Started without the key, the session does not log in (nor pair afresh) and says why.
    caplog.set_level(logging.ERROR, logger="wahttp.server.sessions")
    service = Service(service_settings(sim, database_url, tmp_path))
    await service.start()
    try:
        async with service.http() as api:
            status = await wait_status(api, "enc", "reconnecting")
            assert status["linked"] is False
            assert "no encryption key is configured" in status["last_disconnect"]["reason"]
    finally:
        await service.stop()
    assert "auth state cannot be opened: the creds of session 'enc' is encrypted" in caplog.text
    again = await PostgresAuthStore(url_db, "enc", A).load_creds()
    assert again is not None and again.to_json() == creds.to_json()


async def test_without_a_key_the_service_warns_once(
    sim: SimHandle, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wahttp.server.at_rest")
    service = Service(service_settings(sim, database_url, tmp_path))
    await service.start()
    try:
        async with service.http() as api:
            assert (await api.post("/sessions", json={"id": "clear"})).status_code == 201
            await wait_status(api, "clear", "awaiting_pairing")
    finally:
        await service.stop()
    warnings = [r for r in caplog.records if r.name == "wahttp.server.at_rest"]
    assert [(r.levelno, r.getMessage()) for r in warnings] == [(logging.WARNING, CLEAR_WARNING)]
