"""PostgreSQL helpers for tests: a fresh schema per test, the original's table, Baileys' auth."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from wahttp.server.db import Database

TEST_DSN = os.environ.get("WAHTTP_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
INTEROP_DIR = Path(__file__).parent / "interop"

# The Node.js original's db.js, verbatim: its table and its upsert of a session's auth folder.
ORIGINAL_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, auth_json JSONB,"
    " created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now())"
)
ORIGINAL_CREATE_TABLE_NAIVE = ORIGINAL_CREATE_TABLE.replace("TIMESTAMPTZ", "TIMESTAMP")
ORIGINAL_UPSERT = (
    "INSERT INTO sessions (id, auth_json) VALUES ($1, $2)"
    " ON CONFLICT (id) DO UPDATE SET auth_json = EXCLUDED.auth_json, updated_at = now()"
)


async def unreachable_reason(dsn: str) -> str | None:
    """Why this server cannot be used (None: it can)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@asynccontextmanager
async def fresh_schema(
    dsn: str, *, migrate: bool = True, max_size: int = 10
) -> AsyncIterator[Database]:
    """A Database whose search_path is a new, empty schema, dropped afterwards."""
    schema = f"wahttp_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")  # generated name, not input
        db = await Database.connect(
            dsn, min_size=1, max_size=max_size, server_settings={"search_path": schema}
        )
        try:
            if migrate:
                await db.migrate()
            yield db
        finally:
            await db.close()
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


_BAILEYS_SCRIPT = r"""
import { useMultiFileAuthState, Curve, proto } from 'baileys';
import { randomBytes } from 'crypto';
const { state, saveCreds } = await useMultiFileAuthState(process.argv[1]);
state.creds.me = { id: '15550001111:3@s.whatsapp.net', lid: '98765432100:3@lid', name: 'Legacy' };
state.creds.registered = true;
await saveCreds();
const preKeys = {};
for (let i = 1; i <= 5; i++) preKeys[i] = Curve.generateKeyPair();
const keys = {
  'pre-key': preKeys,
  'session': { '15550002222.0': randomBytes(64), '98765432101_1.2': randomBytes(64) },
  'sender-key': { '120363000000000000@g.us::15550002222::0': randomBytes(40) },
  'sender-key-memory': { '120363000000000000@g.us': { '15550002222:1@s.whatsapp.net': true } },
  'app-state-sync-key': {
    'AAAAAB/x+w==': proto.Message.AppStateSyncKeyData.fromObject({
      keyData: randomBytes(32),
      fingerprint: { rawId: 7, currentIndex: 1, deviceIndexes: [0, 1] },
      timestamp: 1700000000,
    }),
  },
  'app-state-sync-version': {
    'regular_high': {
      version: 3, hash: randomBytes(128), indexValueMap: { 'aGk=': { valueMac: randomBytes(32) } },
    },
  },
  'lid-mapping': { '15550002222': '98765432101', '98765432101_reverse': '15550002222' },
  'device-list': { '15550002222': ['0', '1'] },
  'tctoken': { '15550002222@s.whatsapp.net': { token: randomBytes(16), timestamp: '1700000000' } },
  'identity-key': { '15550002222.0': randomBytes(33) },
};
await state.keys.set(keys);
const ids = {};
for (const [category, values] of Object.entries(keys)) ids[category] = Object.keys(values);
console.log(JSON.stringify(ids));
"""


def node_available() -> bool:
    return shutil.which("node") is not None and (INTEROP_DIR / "node_modules" / "baileys").is_dir()


async def baileys_auth_json(folder: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Have Baileys' useMultiFileAuthState write an auth folder; return the original's
    auth_json for it ({file name: JSON.parse(content)}) and the key ids Baileys was given."""
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--input-type=module",
        "-e",
        _BAILEYS_SCRIPT,
        str(folder),
        cwd=INTEROP_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0:
        raise AssertionError(f"node failed: {err.decode()[-2000:]}")
    ids: dict[str, list[str]] = json.loads(out.decode().strip().splitlines()[-1])
    return await asyncio.to_thread(read_auth_folder, folder), ids


def read_auth_folder(folder: Path) -> dict[str, Any]:
    """The original's auth_json for a folder: {file name: JSON.parse(content)}."""
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.iterdir())}
