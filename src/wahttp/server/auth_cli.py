"""`wahttp auth import|export|rotate-key`: auth state between Baileys folders and the database.

Run it while the service is stopped when using the embedded PostgreSQL (one server per data
folder); with DATABASE_URL it can run beside the service, which picks the session up on restart.
With an encryption key configured (server/at_rest.py), import seals what it stores and can read
a sealed folder mirror; export always writes clear files, since that is what Baileys loads.
`rotate-key` seals every session's state under the current key (see `_rotate`), and the
sent-message copies kept for retry receipts (`messages.payload`) too.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections import Counter

from wahttp.server.app import open_database
from wahttp.server.at_rest import sealer_from_settings
from wahttp.server.db import Database
from wahttp.server.messages import MessageRepository
from wahttp.server.schemas import SESSION_ID_PATTERN
from wahttp.server.settings import Settings
from wahttp.server.store import PostgresAuthStore, SessionRepository
from wahttp.wa.auth.multifile import export_folder, import_folder
from wahttp.wa.auth.sealing import KeyConfigError, Sealer
from wahttp.wa.errors import StoreError


async def run_auth_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    settings = settings or Settings()
    try:
        sealer = sealer_from_settings(settings)
    except KeyConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.auth_command == "rotate-key" and sealer is None:
        print(
            "error: no encryption key: set WAHTTP_ENCRYPTION_KEY or WAHTTP_ENCRYPTION_KEY_FILE"
            " (the new key first, the old ones after it)",
            file=sys.stderr,
        )
        return 2
    try:
        async with contextlib.AsyncExitStack() as stack:
            db = await open_database(settings, stack)
            repo = SessionRepository(db, sealer)
            if args.auth_command == "import":
                return await _import(repo, db, args, settings, sealer)
            if args.auth_command == "rotate-key":
                assert sealer is not None
                return await _rotate(repo, db, settings, sealer)
            return await _export(repo, db, args, sealer)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _import(
    repo: SessionRepository,
    db: Database,
    args: argparse.Namespace,
    settings: Settings,
    sealer: Sealer | None,
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
        # A sealed folder (a mirror or its backup) opens as the session it is named after.
        store = PostgresAuthStore(db, session_id, sealer)
        state = await import_folder(args.folder, store, sealer=sealer)
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
        in_place = target.resolve() == args.folder.resolve()
        if not in_place or sealer is not None:
            # With a key the mirror holds sealed files only, even when imported in place.
            await export_folder(store, target, replace=True, sealer=sealer)
            if in_place:
                print(f"sealed {target} in place (it is this session's mirror)")
    return 0


async def _export(
    repo: SessionRepository, db: Database, args: argparse.Namespace, sealer: Sealer | None
) -> int:
    if await repo.get(args.session_id) is None:
        print(f"error: no session {args.session_id!r}", file=sys.stderr)
        return 1
    store = PostgresAuthStore(db, args.session_id, sealer)
    if await store.load_creds() is None:
        print(f"error: session {args.session_id!r} has no auth state", file=sys.stderr)
        return 1
    await export_folder(store, args.folder)
    print(f"exported session {args.session_id!r} to {args.folder}")
    if sealer is not None:
        print(
            f"note: {args.folder} holds the session's keys in clear; keep it safe", file=sys.stderr
        )
    return 0


async def _rotate(repo: SessionRepository, db: Database, settings: Settings, sealer: Sealer) -> int:
    """Seal every session's creds and keys under the current key, one transaction per session.

    Clear values (written without a key, or by the Node.js original, whose legacy rows are
    converted) and values under older keys are re-sealed; values already under the current
    key are only checked. With the folder mirror on, each session's folder is rewritten sealed
    in the same step. Running it again is harmless. A session that fails (for instance a value
    sealed under a key that is not configured) is reported and the others go on.
    """
    totals: Counter[str] = Counter()
    values = resealed = failed = 0
    rows = await repo.list()
    messages = MessageRepository(db, sealer)
    for row in rows:
        store = PostgresAuthStore(db, row.id, sealer)
        folder = settings.auth_dir / row.id if settings.auth_mirror else None
        try:
            counts = await store.reseal(folder)
            sent = await messages.reseal_payloads(row.id)
        except StoreError as exc:
            failed += 1
            print(f"session {row.id!r}: error: {exc}", file=sys.stderr)
            continue
        if sent.values:
            detail = ", ".join(f"{n} {_source(s)}" for s, n in sorted(sent.resealed.items()))
            print(
                f"session {row.id!r}: {sent.values} sent message copies,"
                f" {sent.total_resealed} re-sealed{' (' + detail + ')' if detail else ''}"
            )
        values += counts.values
        resealed += counts.total_resealed
        totals.update(counts.resealed)
        detail = ", ".join(f"{n} {_source(s)}" for s, n in sorted(counts.resealed.items()))
        legacy = "; converted its Node.js auth_json" if counts.converted_legacy else ""
        print(
            f"session {row.id!r}: {counts.values} values, {counts.total_resealed} re-sealed"
            f"{' (' + detail + ')' if detail else ''}{legacy}"
        )
    detail = ", ".join(f"{n} {_source(s)}" for s, n in sorted(totals.items()))
    print(
        f"{len(rows) - failed} of {len(rows)} sessions now sealed under key id"
        f" {sealer.current_kid!r}: {values} values, {resealed} re-sealed"
        f"{' (' + detail + ')' if detail else ''}"
    )
    return 1 if failed else 0


def _source(source: str) -> str:
    return "were in clear" if source == "clear" else f"were under key id {source!r}"
