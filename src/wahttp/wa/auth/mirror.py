"""A Baileys auth folder kept in step with another store (the database): the folder mirror.

The database is the truth; the folder is there so a user can go back to (or on with) a Baileys
app on the same files. Writing it at once on every ratchet step costs an fsync per file per
message, a third of the CPU of a send. So the mirror can write behind: changes are queued per file
(a newer value replaces a queued older one), one task writes the queue out in a thread and, while
it does, the next changes queue up and go out together. All mirrors of a process share one
writer thread: many threads doing short file syscalls starve the event loop of the GIL (with 50
busy sessions that tripled the CPU per message), while one thread keeps the I/O off the loop and
lets each session's queue grow into bigger batches when the disk is slow. `flush()` writes
everything queued before it returns (a session does that when it stops); `discard()` drops the
queue (before the folder is deleted). Written behind, files are replaced atomically but not
fsynced (Baileys never fsyncs its folder either): after a process crash the folder may miss the
last batch, after an OS crash a file may be empty; the database is durable, and `wahttp auth
export` rewrites the folder from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wahttp.wa.auth.creds import Creds
from wahttp.wa.auth.filenames import CREDS_FILE, file_key_id
from wahttp.wa.auth.multifile import (
    AuthFolderError,
    _apply,
    _clear,
    _encode,
    _plan_keys,
    _Planned,
    folder_session_id,
)
from wahttp.wa.auth.sealing import SealContext, Sealer
from wahttp.wa.auth.store import AuthStore, KeyValue

__all__ = ["FolderMirror"]

log = logging.getLogger(__name__)

# Retry delays (seconds) after a failed folder write: doubling from the first up to the last.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0

# A change of more files than this (a linked session's 812 pre-keys, a pre-key upload) is not
# queued: the call writes it (on the shared executor) before it returns. Queued behind the one
# writer thread, the pre-key files of a thousand sessions linking at once piled up in memory
# (RSS per idle session 58 -> 250-630 KiB, for good: the allocator keeps freed memory).
QUEUE_AT_MOST = 32

# The one thread that writes every write-behind mirror's batches (see the module docstring).
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auth-folder")


class FolderMirror:
    """An AuthStore that delegates to `inner` and keeps a Baileys folder in step with it.

    Every save_creds/set/clear goes to `inner` first, then to the folder. Changes are validated
    and encoded before `inner` sees them, so a key the folder cannot hold is refused up front.
    Mutations are serialized so the folder sees them in the order `inner` did.

    Written through (the default), file I/O runs in a thread before the call returns and a
    folder I/O failure after `inner` succeeded raises AuthFolderError. With `write_behind` the
    call returns once `inner` has the change; a failed folder write is logged (the path and the
    reason, never a value) and tried again, later changes to the same file replacing it. With a
    `batch_delay` the writer waits that long after the first queued change before it writes,
    so a busy session hands the writer thread a few batches a second, not one per message (each
    hand-over to a thread costs the event loop more than writing two small files does).

    With `sealer` the files are sealed (as files of `session_id`, default the folder's name):
    the folder is then a backup that `read_folder` opens with the key, not one Baileys loads.
    """

    def __init__(
        self,
        inner: AuthStore,
        path: Path,
        *,
        sealer: Sealer | None = None,
        session_id: str | None = None,
        write_behind: bool = False,
        batch_delay: float = 0.0,
    ) -> None:
        self.inner = inner
        self.path = path
        self.sealer = sealer
        self.session_id = folder_session_id(path) if session_id is None else session_id
        self.write_behind = write_behind
        self.batch_delay = batch_delay
        self._lock = asyncio.Lock()
        # Write-behind: file name -> bytes (None: delete), and the task writing them out.
        self._queued: dict[str, bytes | None] = {}
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._urgent = False
        self._error: AuthFolderError | None = None

    # -- AuthStore ---------------------------------------------------------------------------
    async def load_creds(self) -> Creds | None:
        return await self.inner.load_creds()

    async def save_creds(self, creds: Creds) -> None:
        data = _encode(creds.to_json(), self.sealer, SealContext(self.session_id))
        async with self._lock:
            await self.inner.save_creds(creds)
            await self._out([(CREDS_FILE, data)])

    async def get(self, category: str, ids: list[str]) -> dict[str, KeyValue]:
        # Keys live under their file-name ids (see filenames.py); callers use Baileys' ids.
        by_file = {file_key_id(i): i for i in ids}
        found = await self.inner.get(category, list(by_file))
        return {by_file[k]: v for k, v in found.items() if k in by_file}

    async def set(self, changes: dict[str, dict[str, KeyValue | None]]) -> None:
        changes = {c: {file_key_id(k): v for k, v in vals.items()} for c, vals in changes.items()}
        planned = _plan_keys(changes, self.sealer, self.session_id)
        async with self._lock:
            await self.inner.set(changes)
            if planned:
                await self._out(planned)

    async def clear(self) -> None:
        async with self._lock:
            await self.inner.clear()
            await self._drop_queue()
            await asyncio.to_thread(_clear, self.path)

    async def all_keys(self) -> dict[str, dict[str, KeyValue]]:
        return await self.inner.all_keys()

    # -- the folder --------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """How many files wait to be written (write-behind)."""
        return len(self._queued)

    async def flush(self) -> None:
        """Write out everything queued so far; AuthFolderError if the folder refuses it."""
        self._urgent = True
        self._wake.set()
        if self._queued:
            self._start_writer()
        try:
            while self._writer is not None and not self._writer.done():
                await asyncio.shield(self._writer)
        finally:
            self._urgent = False
        if self._queued and self._error is not None:
            raise self._error

    async def discard(self) -> None:
        """Drop what is queued (the folder is about to go); waits for a write in progress."""
        async with self._lock:
            await self._drop_queue()

    async def _out(self, planned: list[_Planned]) -> None:
        if not self.write_behind:
            await asyncio.to_thread(_apply, self.path, planned)
            return
        if len(planned) > QUEUE_AT_MOST:
            # Written now, on the shared executor (rare and big: not the writer thread's kind
            # of work), after whatever was queued before it.
            with contextlib.suppress(AuthFolderError):
                await self.flush()
            try:
                await asyncio.to_thread(_apply, self.path, planned, durable=False)
                return
            except AuthFolderError as exc:
                log.warning("auth folder not written, will try again: %s", exc)
        for name, data in planned:
            self._queued.pop(name, None)  # re-insert: the queue keeps the latest order
            self._queued[name] = data
        self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_queue(), name=f"auth-folder-{self.session_id}"
            )

    async def _drop_queue(self) -> None:
        self._queued.clear()
        writer = self._writer
        if writer is not None and not writer.done():
            self._wake.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(writer)

    def _write(self, batch: dict[str, bytes | None]) -> None:
        """In the writer thread: one batch, creds.json last, without fsync (module docstring)."""
        _apply(self.path, _creds_last(batch), durable=False)

    async def _pause(self, seconds: float) -> None:
        """Sleep up to `seconds`; flush() and discard() cut it short."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _write_queue(self) -> None:
        delay = RETRY_FIRST
        while self._queued:
            if self.batch_delay > 0 and not self._urgent:
                await self._pause(self.batch_delay)
                if not self._queued:
                    return  # discarded meanwhile
            batch, self._queued = self._queued, {}
            try:
                await asyncio.get_running_loop().run_in_executor(_WRITER, self._write, batch)
            except AuthFolderError as exc:
                self._error = exc
                for name, data in batch.items():
                    self._queued.setdefault(name, data)  # a newer value, queued since, stays
                log.warning("auth folder not written, will try again: %s", exc)
                if self._urgent:
                    return
                await self._pause(delay)
                delay = min(RETRY_MAX, delay * 2)
            else:
                self._error = None
                delay = RETRY_FIRST


def _creds_last(batch: dict[str, bytes | None]) -> list[_Planned]:
    """Key files first, creds.json last (as write_folder does)."""
    planned = [(name, data) for name, data in batch.items() if name != CREDS_FILE]
    if CREDS_FILE in batch:
        planned.append((CREDS_FILE, batch[CREDS_FILE]))
    return planned
