"""PostgreSQL storage of sessions and their auth state (schema: server/migrations/).

`SessionRepository` manages `sessions` rows. `PostgresAuthStore` is the AuthStore of one
session: creds in `sessions.creds`, each key in its own `auth_keys` row, every value in Baileys'
BufferJSON form, so a write costs the same however many keys a session holds.

Rows written by the Node.js original keep the whole auth folder in `sessions.auth_json`
({"creds.json": ..., "<category>-<id>.json": ...}, auth_format 'legacy'). The first time a store
loads such a row it converts it once into creds + auth_keys and marks it 'keys'; auth_json is
left as it was and is never rewritten (that would cost a whole-folder write per key). To get
the original's shape back (export, downgrade), `export_auth_json` builds it on demand.

Key ids are stored in file-name form (Baileys' fixFileName: '/' -> '__', ':' -> '-'), as in
auth_json and in an auth folder; get/set apply the same mapping to the ids callers pass and
answer under the caller's ids.

With a Sealer (wa/auth/sealing.py) the creds column and every auth_keys value are stored as
sealed envelopes bound to (session, category, key id); clear values (written without a key, or
by the original) are read as they are and sealed when next written. Converting a legacy row
under a key also clears its auth_json, so no clear copy is left behind. `reseal` re-seals a
whole session under the current key (`wahttp auth rotate-key`). Exports are always in clear.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from wahttp.server.db import Database, dumps
from wahttp.wa.auth.bufferjson import from_json, to_json
from wahttp.wa.auth.creds import Creds
from wahttp.wa.auth.filenames import CREDS_FILE, file_key_id, split_file_name
from wahttp.wa.auth.multifile import key_file_name, write_folder
from wahttp.wa.auth.sealing import SealContext, Sealer, is_sealed, open_sealed
from wahttp.wa.auth.store import KeyValue
from wahttp.wa.errors import StoreError
from wahttp.wa.logs import SessionLogger

log = logging.getLogger(__name__)

_CATEGORY = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_RETRIES = 3


class SessionExists(StoreError):
    """A session with this id already exists."""


class SessionNotFound(StoreError):
    """No session with this id."""


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    created_at: datetime
    updated_at: datetime
    webhook_url: str | None
    push_name: str | None
    has_auth: bool


# Timestamps may be `timestamp` in a database the original made: ::timestamptz reads them in
# the session's TimeZone, the zone its now() wrote them in.
_SESSION_COLUMNS = """
    id,
    COALESCE(created_at::timestamptz, updated_at::timestamptz, now()) AS created_at,
    COALESCE(updated_at::timestamptz, created_at::timestamptz, now()) AS updated_at,
    webhook_url,
    push_name,
    COALESCE(
        CASE WHEN auth_format = 'keys' THEN creds IS NOT NULL
             ELSE jsonb_typeof(auth_json) = 'object' AND auth_json ? 'creds.json' END,
        false
    ) AS has_auth
"""


def _session_row(record: asyncpg.Record) -> SessionRow:
    return SessionRow(
        id=record["id"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        webhook_url=record["webhook_url"],
        push_name=record["push_name"],
        has_auth=record["has_auth"],
    )


class SessionRepository:
    """The `sessions` table; live connection status is not stored, only what outlives it."""

    def __init__(self, db: Database, sealer: Sealer | None = None) -> None:
        self._db = db
        self._sealer = sealer

    async def create(
        self, id: str, *, webhook_url: str | None = None, push_name: str | None = None
    ) -> SessionRow:
        """Insert a new session (auth_format 'keys'); SessionExists if the id is taken."""
        if not id:
            raise ValueError("session id must not be empty")
        try:
            async with self._db.acquire() as conn:
                record = await conn.fetchrow(
                    "INSERT INTO sessions (id, webhook_url, push_name, auth_format)"
                    " VALUES ($1, $2, $3, 'keys') ON CONFLICT (id) DO NOTHING"
                    f" RETURNING {_SESSION_COLUMNS}",
                    id,
                    webhook_url,
                    push_name,
                )
        except asyncpg.UniqueViolationError:  # a unique index other than the id's own
            record = None
        if record is None:
            raise SessionExists(f"session {id!r} already exists")
        return _session_row(record)

    async def get(self, id: str) -> SessionRow | None:
        async with self._db.acquire() as conn:
            record = await conn.fetchrow(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = $1", id
            )
        return None if record is None else _session_row(record)

    async def list(self) -> list[SessionRow]:
        """All sessions, oldest first."""
        async with self._db.acquire() as conn:
            records = await conn.fetch(
                f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY created_at, id"
            )
        return [_session_row(r) for r in records]

    async def delete(self, id: str) -> bool:
        """Delete the session and (cascade) its keys; False if there was none."""
        async with self._db.acquire() as conn:
            status: str = await conn.execute("DELETE FROM sessions WHERE id = $1", id)
        return status != "DELETE 0"

    async def set_webhook(self, id: str, url: str | None) -> None:
        await self._update(id, "webhook_url = $2, updated_at = now()", url)

    async def set_push_name(self, id: str, name: str | None) -> None:
        await self._update(id, "push_name = $2, updated_at = now()", name)

    async def touch(self, id: str) -> None:
        await self._update(id, "updated_at = now()")

    async def export_auth_json(self, id: str) -> dict[str, Any]:
        """The original's auth_json for this session (see `export_auth_json`)."""
        return await export_auth_json(self._db, id, self._sealer)

    async def _update(self, id: str, assignments: str, *args: Any) -> None:
        # `assignments` is one of the constant strings above, never caller input.
        async with self._db.acquire() as conn:
            status: str = await conn.execute(
                f"UPDATE sessions SET {assignments} WHERE id = $1", id, *args
            )
        if status == "UPDATE 0":
            raise SessionNotFound(f"no session {id!r}")


async def export_auth_json(
    db: Database, session_id: str, sealer: Sealer | None = None
) -> dict[str, Any]:
    """The session's auth state in the original's auth_json shape, built from our rows.

    {"creds.json": <creds>, "<category>-<file id>.json": <value>, ...}, values in BufferJSON
    form, as JSON.parse of the files of a useMultiFileAuthState folder. A row not converted
    yet is returned as it is stored. Sealed values are opened with `sealer`: the export holds
    the session's secrets in clear.
    """
    # One snapshot for creds and keys, so a concurrent write cannot tear the export.
    async with db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            "SELECT auth_format, auth_json, creds FROM sessions WHERE id = $1", session_id
        )
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        if row["auth_format"] == "legacy":
            return _legacy_files(row["auth_json"])
        keys = await conn.fetch(
            "SELECT category, key_id, value FROM auth_keys WHERE session_id = $1"
            " ORDER BY category, key_id",
            session_id,
        )
    out: dict[str, Any] = {}
    if row["creds"] is not None:
        out[CREDS_FILE] = _open(sealer, SealContext(session_id), row["creds"])
    for key in keys:
        context = SealContext(session_id, key["category"], key["key_id"])
        out[f"{key['category']}-{key['key_id']}.json"] = _open(sealer, context, key["value"])
    return out


def _legacy_files(auth_json: Any) -> dict[str, Any]:
    """auth_json as {file name: parsed content}; tolerates contents stored as JSON text."""
    try:
        if isinstance(auth_json, str):
            auth_json = json.loads(auth_json)
        if not isinstance(auth_json, dict):
            return {}
        if isinstance(auth_json.get(CREDS_FILE), str):
            # The files' raw text rather than their parsed JSON: parse every one.
            return {k: json.loads(v) if isinstance(v, str) else v for k, v in auth_json.items()}
    except ValueError as exc:
        raise StoreError("legacy auth_json holds a file that is not valid JSON") from exc
    return dict(auth_json)


# Values JSON can carry but PostgreSQL's jsonb (or UTF-8) cannot: a clear StoreError, never a crash.
_UNSTORABLE = (ValueError, UnicodeEncodeError, asyncpg.DataError)


def _seal(sealer: Sealer | None, context: SealContext, value: Any) -> Any:
    """What to store for a value in BufferJSON form: itself, or its sealed envelope."""
    if sealer is None:
        return value
    return sealer.seal(dumps(value).encode("utf-8"), context)


def _open(sealer: Sealer | None, context: SealContext, stored: Any) -> Any:
    """A stored value in BufferJSON form: clear values as they are, sealed ones opened."""
    if not is_sealed(stored):
        return stored
    plaintext = open_sealed(sealer, stored, context)
    try:
        return json.loads(plaintext)
    except ValueError:  # authenticated, so written by us: should never happen
        raise StoreError(f"{context}: the sealed content is not valid JSON") from None


@dataclass(slots=True)
class ResealCounts:
    """What `PostgresAuthStore.reseal` did: values seen, and re-sealed by what they were in."""

    values: int = 0
    resealed: Counter[str] = field(default_factory=Counter)  # "clear" or the old key id
    converted_legacy: bool = False
    folder_written: bool = False

    @property
    def total_resealed(self) -> int:
        return sum(self.resealed.values())


class PostgresAuthStore:
    """The AuthStore of one session (its `sessions` row must exist; SessionNotFound if not).

    With `sealer`, values are sealed on write and opened on read (see the module docstring).
    """

    def __init__(self, db: Database, session_id: str, sealer: Sealer | None = None) -> None:
        self._db = db
        self.session_id = session_id
        self._sealer = sealer
        self._converted = False
        self._log = SessionLogger(log, session_id)

    def _context(self, category: str | None = None, key_id: str | None = None) -> SealContext:
        return SealContext(self.session_id, category, key_id)

    async def load_creds(self) -> Creds | None:
        await self._ensure_converted()
        async with self._db.acquire() as conn:
            value = await conn.fetchval("SELECT creds FROM sessions WHERE id = $1", self.session_id)
        if value is None:
            return None
        value = _open(self._sealer, self._context(), value)
        try:
            return Creds.from_json(from_json(value))
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreError(f"stored creds of {self.session_id!r} are invalid") from exc

    async def save_creds(self, creds: Creds) -> None:
        await self._ensure_converted()
        try:
            async with self._db.acquire() as conn:
                status: str = await conn.execute(
                    "UPDATE sessions SET creds = $2, updated_at = now() WHERE id = $1",
                    self.session_id,
                    _seal(self._sealer, self._context(), to_json(creds.to_json())),
                )
        except _UNSTORABLE as exc:
            raise StoreError(f"the creds of {self.session_id!r} cannot be stored") from exc
        if status == "UPDATE 0":
            raise SessionNotFound(f"no session {self.session_id!r}")

    async def get(self, category: str, ids: list[str]) -> dict[str, KeyValue]:
        if not ids:
            return {}
        await self._ensure_converted()
        callers: dict[str, list[str]] = {}
        for key_id in ids:
            callers.setdefault(file_key_id(key_id), []).append(key_id)
        async with self._db.acquire() as conn:
            records = await conn.fetch(
                "SELECT key_id, value FROM auth_keys"
                " WHERE session_id = $1 AND category = $2 AND key_id = ANY($3::text[])",
                self.session_id,
                category,
                list(callers),
            )
        out: dict[str, KeyValue] = {}
        for record in records:
            context = self._context(category, record["key_id"])
            value = from_json(_open(self._sealer, context, record["value"]))
            for key_id in callers[record["key_id"]]:
                out[key_id] = value
        return out

    async def set(self, changes: dict[str, dict[str, KeyValue | None]]) -> None:
        """Write and delete keys in one transaction: one DELETE and one INSERT for the batch."""
        writes: dict[tuple[str, str], str | None] = {}
        for category, values in changes.items():
            _check_category(category)
            for key_id, value in values.items():
                if not key_id:
                    raise ValueError("key id must not be empty")
                # Later entries win, as they would in a folder when two ids share a file.
                file_id = file_key_id(key_id)
                try:
                    writes[(category, file_id)] = (
                        None
                        if value is None
                        else dumps(
                            _seal(self._sealer, self._context(category, file_id), to_json(value))
                        )
                    )
                except _UNSTORABLE as exc:
                    raise StoreError(f"key {category}/{file_id} cannot be stored") from exc
        if not writes:
            return
        await self._ensure_converted()

        async def apply(conn: asyncpg.Connection) -> None:
            await _write_keys(conn, self.session_id, writes)

        try:
            await self._in_transaction(apply)
        except asyncpg.DataError as exc:
            # jsonb refuses what JSON allows: NUL characters, lone surrogates, huge numbers.
            raise StoreError(f"keys of {self.session_id!r} cannot be stored") from exc

    async def clear(self) -> None:
        """Forget creds and keys (logged out); the original's auth_json too, it is as dead."""

        async def apply(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM auth_keys WHERE session_id = $1", self.session_id)
            await conn.execute(
                "UPDATE sessions SET creds = NULL, auth_json = NULL, auth_format = 'keys',"
                " updated_at = now() WHERE id = $1",
                self.session_id,
            )

        await self._in_transaction(apply)
        self._converted = True

    async def all_keys(self) -> dict[str, dict[str, KeyValue]]:
        """Every key, {category: {file-form id: value}} (AuthStore.all_keys)."""
        await self._ensure_converted()
        async with self._db.acquire() as conn:
            records = await conn.fetch(
                "SELECT category, key_id, value FROM auth_keys WHERE session_id = $1"
                " ORDER BY category, key_id",
                self.session_id,
            )
        out: dict[str, dict[str, KeyValue]] = {}
        for record in records:
            category, key_id = record["category"], record["key_id"]
            value = _open(self._sealer, self._context(category, key_id), record["value"])
            out.setdefault(category, {})[key_id] = from_json(value)
        return out

    async def export_auth_json(self) -> dict[str, Any]:
        """This session's state in the original's auth_json shape (see `export_auth_json`)."""
        return await export_auth_json(self._db, self.session_id, self._sealer)

    async def reseal(self, folder: Path | None = None) -> ResealCounts:
        """Seal every value of this session under the sealer's current key, in one transaction.

        Clear values and values under older keys are re-sealed; values already under the
        current key are opened (which checks them) and left as they are, so running it twice
        is harmless. A legacy row is converted first. With `folder`, that folder is rewritten
        from the database, sealed, and pruned of other auth files, while the session's rows
        are locked (a running service's writes wait, so they cannot be overtaken).
        """
        sealer = self._sealer
        if sealer is None:
            raise StoreError("re-sealing needs an encryption key")
        counts = ResealCounts()

        async def apply(conn: asyncpg.Connection) -> None:
            nonlocal counts
            counts = ResealCounts()
            await self._lock_row(conn)
            counts.converted_legacy = await self._convert(conn)
            stored_creds = await conn.fetchval(
                "SELECT creds FROM sessions WHERE id = $1", self.session_id
            )
            records = await conn.fetch(
                "SELECT category, key_id, value FROM auth_keys WHERE session_id = $1"
                " ORDER BY category, key_id FOR UPDATE",
                self.session_id,
            )

            def renew(context: SealContext, stored: Any) -> tuple[Any, Any]:
                """(clear value, new stored value or None to keep it)."""
                counts.values += 1
                value = _open(sealer, context, stored)
                if sealer.is_current(stored):
                    return value, None
                counts.resealed["clear" if not is_sealed(stored) else str(stored["kid"])] += 1
                return value, _seal(sealer, context, value)

            creds: Any = None
            if stored_creds is not None:
                creds, new_creds = renew(self._context(), stored_creds)
                if new_creds is not None:
                    await conn.execute(
                        "UPDATE sessions SET creds = $2 WHERE id = $1", self.session_id, new_creds
                    )
            keys: dict[str, dict[str, Any]] = {}
            writes: dict[tuple[str, str], str | None] = {}
            for record in records:
                category, key_id = record["category"], record["key_id"]
                value, new = renew(self._context(category, key_id), record["value"])
                keys.setdefault(category, {})[key_id] = value
                if new is not None:
                    writes[(category, key_id)] = dumps(new)
            await _write_keys(conn, self.session_id, writes)
            if folder is not None:
                skipped = await asyncio.to_thread(
                    _write_sealed_folder, folder, self.session_id, creds, keys, sealer
                )
                if skipped:
                    self._log.warning("reseal: %d keys have no file name; not mirrored", skipped)
                counts.folder_written = True

        await self._in_transaction(apply)
        self._converted = True
        return counts

    async def import_auth_json(self, files: Mapping[str, Any]) -> None:
        """Replace all state with an auth folder's files ({file name: parsed JSON content})."""

        async def apply(conn: asyncpg.Connection) -> None:
            await self._lock_row(conn)
            await conn.execute("DELETE FROM auth_keys WHERE session_id = $1", self.session_id)
            await self._store_files(conn, dict(files))

        await self._in_transaction(apply)
        self._converted = True

    async def _ensure_converted(self) -> None:
        """Convert a legacy auth_json row once; later calls cost nothing."""
        if self._converted:
            return
        async with self._db.acquire() as conn:
            auth_format = await conn.fetchval(
                "SELECT auth_format FROM sessions WHERE id = $1", self.session_id
            )
        if auth_format is None:
            raise SessionNotFound(f"no session {self.session_id!r}")
        if auth_format == "legacy":

            async def convert(conn: asyncpg.Connection) -> None:
                await self._convert(conn)

            await self._in_transaction(convert)
        self._converted = True

    async def _convert(self, conn: asyncpg.Connection) -> bool:
        """Convert a legacy row in this transaction; False if it was not (or no longer) one."""
        auth_format = await self._lock_row(conn)
        if auth_format != "legacy":
            return False  # another store converted it while we waited for the lock
        auth_json = await conn.fetchval(
            "SELECT auth_json FROM sessions WHERE id = $1", self.session_id
        )
        files = _legacy_files(auth_json)
        count = await self._store_files(conn, files)
        if self._sealer is not None:
            # The original's copy is the whole auth state in clear: encrypted at rest means
            # none is left. (The Node.js version could not read the sealed rows anyway.)
            await conn.execute(
                "UPDATE sessions SET auth_json = NULL WHERE id = $1", self.session_id
            )
        self._log.info(
            "converted legacy auth_json: creds and %d keys%s",
            count,
            " (sealed; the clear auth_json was removed)" if self._sealer else "",
        )
        return True

    async def _lock_row(self, conn: asyncpg.Connection) -> str:
        auth_format: str | None = await conn.fetchval(
            "SELECT auth_format FROM sessions WHERE id = $1 FOR UPDATE", self.session_id
        )
        if auth_format is None:
            raise SessionNotFound(f"no session {self.session_id!r}")
        return auth_format

    async def _store_files(self, conn: asyncpg.Connection, files: dict[str, Any]) -> int:
        writes: dict[tuple[str, str], str | None] = {}
        for name, value in files.items():
            split = split_file_name(name)
            if split is None:
                if name != CREDS_FILE:
                    self._log.warning("auth state: skipping unknown file %s", name)
                continue
            if value is not None:
                category, key_id = split
                file_id = file_key_id(key_id)
                context = self._context(category, file_id)
                writes[(category, file_id)] = dumps(_seal(self._sealer, context, value))
        await _write_keys(conn, self.session_id, writes)
        creds = files.get(CREDS_FILE)
        await conn.execute(
            "UPDATE sessions SET creds = $2, auth_format = 'keys' WHERE id = $1",
            self.session_id,
            _seal(self._sealer, self._context(), creds) if isinstance(creds, dict) else None,
        )
        return len(writes)

    async def _in_transaction(self, work: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
        for attempt in range(_RETRIES):
            try:
                async with self._db.acquire() as conn, conn.transaction():
                    await work(conn)
                return
            except asyncpg.ForeignKeyViolationError as exc:
                raise SessionNotFound(f"no session {self.session_id!r}") from exc
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _RETRIES - 1:
                    raise
                self._log.info("auth store transaction conflicted; retrying")


def _write_sealed_folder(
    folder: Path,
    session_id: str,
    creds: Any,
    keys: dict[str, dict[str, Any]],
    sealer: Sealer,
) -> int:
    """Rewrite a session's folder mirror, sealed; returns how many keys no file can hold."""
    fitting: dict[str, dict[str, Any]] = {}
    skipped = 0
    for category, values in keys.items():
        for key_id, value in values.items():
            try:
                key_file_name(category, key_id)
            except ValueError:
                skipped += 1
                continue
            fitting.setdefault(category, {})[key_id] = value
    if creds is None and not fitting and not folder.exists():
        return skipped  # nothing to mirror, and no folder to clean
    write_folder(folder, creds, fitting, prune=True, sealer=sealer, session_id=session_id)
    return skipped


def _check_category(category: str) -> None:
    if not _CATEGORY.match(category):
        raise ValueError(f"bad key category {category!r}")


async def _write_keys(
    conn: asyncpg.Connection, session_id: str, writes: Mapping[tuple[str, str], str | None]
) -> None:
    """Apply {(category, file id): JSON text or None} with one DELETE and one INSERT."""
    # Sorted, so concurrent writers lock rows in the same order.
    ordered = sorted(writes.items())
    deletes = [key for key, value in ordered if value is None]
    upserts = [(key, value) for key, value in ordered if value is not None]
    if deletes:
        await conn.execute(
            "DELETE FROM auth_keys WHERE session_id = $1 AND (category, key_id) IN"
            " (SELECT * FROM unnest($2::text[], $3::text[]))",
            session_id,
            [c for c, _ in deletes],
            [k for _, k in deletes],
        )
    if upserts:
        await conn.execute(
            "INSERT INTO auth_keys (session_id, category, key_id, value)"
            " SELECT $1, c, k, v::jsonb FROM unnest($2::text[], $3::text[], $4::text[])"
            " AS t (c, k, v)"
            " ON CONFLICT (session_id, category, key_id) DO UPDATE SET value = EXCLUDED.value",
            session_id,
            [c for (c, _), _ in upserts],
            [k for (_, k), _ in upserts],
            [v for _, v in upserts],
        )
