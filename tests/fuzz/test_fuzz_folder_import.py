"""Importing damaged Baileys auth folders into the PostgreSQL store (`wahttp auth import`).

read_folder is fuzzed in test_fuzz_inputs.py; this goes one step further, as the service does:
what read_folder accepts is written into a PostgresAuthStore (clear or sealed) and read back.
An import may only fail with StoreError (AuthFolderError is one), naming what is wrong.

JSON that Baileys reads fine can hold what PostgreSQL's jsonb cannot: "\\u0000" in a string, a
lone surrogate ("\\ud800") and numbers beyond a double (1e400). The store turns those into a
StoreError naming the key, so an import fails cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_inputs import (
    SEALER,
    bytes_json,
    damaged_creds,
    folder,
    folder_files,
    mutated,
)

from wahttp.server.db import Database
from wahttp.server.store import PostgresAuthStore, SessionRepository
from wahttp.wa.auth.multifile import import_folder
from wahttp.wa.auth.sealing import Sealer
from wahttp.wa.errors import StoreError

T = TypeVar("T")
pytestmark = pytest.mark.parametrize("db_dsn", ["postgres"], indirect=True)
# What jsonb cannot hold, as the text of a key file or a creds.json field.
UNSTORABLE = {
    "nul": '"a\\u0000b"',
    "lone-surrogate": '"\\ud800"',
    "beyond-double": "1e400",
}
# The crashes seen today instead of a StoreError (asyncpg's DataError covers its
# UntranslatableCharacterError; UnicodeEncodeError is a ValueError).
CRASHES = (asyncpg.DataError, ValueError)


async def _import(db: Database, files: dict[str, bytes | None], sealer: Sealer | None) -> None:
    """Import the folder into a new session's store and read everything back."""
    session_id = f"import-{secrets.token_hex(4)}"
    await SessionRepository(db).create(session_id)
    store = PostgresAuthStore(db, session_id, sealer)
    with folder(files) as path:
        await import_folder(path, store, sealer=sealer, session_id="session-fuzz")
    assert await store.load_creds() is not None
    await store.all_keys()


def _with(where: str, text: str) -> dict[str, bytes | None]:
    files: dict[str, bytes | None] = dict(folder_files())
    if where == "key":
        files["lid-mapping-15551234567.json"] = text.encode()
    else:
        creds = folder_files()["creds.json"].decode()
        files["creds.json"] = (creds[:-1] + f',"lastPropHash":{text}}}').encode()
    return files


def _case(what: str, where: str, sealed: bool) -> Any:
    return pytest.param(
        what, where, sealed, id=f"{what}-in-{where}-{'sealed' if sealed else 'clear'}"
    )


@pytest.mark.parametrize(
    ("what", "where", "sealed"),
    [_case(w, p, s) for w in UNSTORABLE for p in ("key", "creds") for s in (False, True)],
)
async def test_unstorable_json_is_a_store_error(
    db: Database, what: str, where: str, sealed: bool
) -> None:
    with contextlib.suppress(StoreError):
        await _import(db, _with(where, UNSTORABLE[what]), SEALER if sealed else None)


def _in_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the test's loop from the Hypothesis worker thread."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)


_VALUES = st.sampled_from(sorted(UNSTORABLE.values())) | st.sampled_from(
    ("null", "[]", '{"a":{"b":[1,2.5,"x"]}}', '"plain"', "12")
)


async def test_damaged_folders_import_or_raise_store_errors(db: Database) -> None:
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,  # one exception, so the xfail sees its type
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data(), st.booleans())
    def run(data: st.DataObject, sealed: bool) -> None:
        files: dict[str, bytes | None] = dict(folder_files())
        name = data.draw(st.sampled_from(sorted(files)))
        if name == "creds.json" and data.draw(st.booleans()):
            files[name] = json.dumps(data.draw(damaged_creds()), default=bytes_json).encode()
        else:
            seed = folder_files()[name]
            files[name] = data.draw(mutated(seed) | _VALUES.map(str.encode))
        with contextlib.suppress(StoreError):
            _in_loop(loop, _import(db, files, SEALER if sealed else None))

    await asyncio.to_thread(run)
