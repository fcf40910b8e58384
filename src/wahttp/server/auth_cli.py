"""`wahttp auth import|export`: move a session's auth between a Baileys folder and the database.

Run it while the service is stopped when using the embedded PostgreSQL (one server per data
folder); with DATABASE_URL it can run beside the service, which picks the session up on restart.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys

from wahttp.server.app import open_database
from wahttp.server.db import Database
from wahttp.server.schemas import SESSION_ID_PATTERN
from wahttp.server.settings import Settings
from wahttp.server.store import PostgresAuthStore, SessionRepository
from wahttp.wa.auth.multifile import export_folder, import_folder
from wahttp.wa.errors import StoreError


async def run_auth_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    settings = settings or Settings()
    try:
        async with contextlib.AsyncExitStack() as stack:
            db = await open_database(settings, stack)
            repo = SessionRepository(db)
            if args.auth_command == "import":
                return await _import(repo, db, args, settings)
            return await _export(repo, db, args)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _import(
    repo: SessionRepository, db: Database, args: argparse.Namespace, settings: Settings
) -> int:
    session_id = args.id or args.folder.resolve().name
    if not re.match(SESSION_ID_PATTERN, session_id):
        print(f"error: {session_id!r} is not a valid session id (use --id)", file=sys.stderr)
        return 2
    if await repo.get(session_id) is not None:
        print(f"error: a session {session_id!r} exists already", file=sys.stderr)
        return 1
    await repo.create(session_id)
    try:
        state = await import_folder(args.folder, PostgresAuthStore(db, session_id))
    except BaseException:
        await repo.delete(session_id)
        raise
    keys = sum(len(v) for v in state.keys.values())
    linked = "linked" if state.creds.is_linked else "not linked"
    print(f"imported {args.folder} as session {session_id!r} ({linked}, {keys} keys)")
    for skipped in state.skipped:
        print(f"skipped {skipped.name}: {skipped.reason}", file=sys.stderr)
    if settings.auth_mirror:
        target = settings.auth_dir / session_id
        if target.resolve() != args.folder.resolve():
            await export_folder(PostgresAuthStore(db, session_id), target, replace=True)
    return 0


async def _export(repo: SessionRepository, db: Database, args: argparse.Namespace) -> int:
    if await repo.get(args.session_id) is None:
        print(f"error: no session {args.session_id!r}", file=sys.stderr)
        return 1
    store = PostgresAuthStore(db, args.session_id)
    if await store.load_creds() is None:
        print(f"error: session {args.session_id!r} has no auth state", file=sys.stderr)
        return 1
    await export_folder(store, args.folder)
    print(f"exported session {args.session_id!r} to {args.folder}")
    return 0
