"""An ordered lane beside the reader: jobs that may wait (on the owner's database) without
holding up what the reader must pass on at once.

The reader task resolves the server's acks and iq answers. Were it to await, say, the
recording of a delivery receipt, every send of the session would wait for that write
before its ack could be seen: under load that made the ack the slowest step of a send.
Jobs put on a lane run one at a time in the order they were put, so their effects keep
the order of the stanzas they answer. A full lane makes `put` wait: the reader then slows
down rather than gather an unbounded backlog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

Job = Callable[[], Awaitable[None]]

log = logging.getLogger(__name__)


class Lane:
    """One task running queued jobs in order; `close()` cancels it and drops the rest."""

    def __init__(
        self,
        name: str,
        limit: int = 256,
        logger: logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.name = name
        self._queue: asyncio.Queue[Job] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None
        self._log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger or log

    async def put(self, job: Job) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)
        await self._queue.put(job)

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await job()
            except Exception:
                self._log.exception("%s: a job failed", self.name)

    async def close(self) -> None:
        task, self._task = self._task, None
        while not self._queue.empty():
            self._queue.get_nowait()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
