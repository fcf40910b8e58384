"""Run the real Baileys client (tests/interop/baileys_driver.mjs) and read its events."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

INTEROP_DIR = Path(__file__).parent / "interop"


def require_node() -> None:
    """Skip when Node or the npm packages are absent; CI installs both, so there it always runs."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (INTEROP_DIR / "node_modules" / "baileys").is_dir():
        pytest.skip("run `npm ci` in tests/interop first")


class Baileys:
    """One Baileys socket driven through the driver's JSON-lines protocol."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.noise: list[str] = []

    @classmethod
    async def start(cls, url: str, root_key: str, auth_dir: Path, *extra: str) -> Baileys:
        require_node()
        proc = await asyncio.create_subprocess_exec(
            "node",
            "baileys_driver.mjs",
            "--url",
            url,
            "--root-key",
            root_key,
            "--auth-dir",
            str(auth_dir),
            *extra,
            cwd=INTEROP_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def next(self, *kinds: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next event of one of these kinds (others are recorded and skipped)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"Baileys exited before {kinds}; saw {self.events}")
                try:
                    event: dict[str, Any] = json.loads(line)
                except json.JSONDecodeError:
                    self.noise.append(line.decode(errors="replace"))  # not one of our events
                    continue
                self.events.append(event)
                if event.get("event") == "error":
                    raise AssertionError(f"Baileys driver error: {event}")
                if event.get("event") in kinds:
                    return event

    async def command(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.command(cmd="stop")
                await asyncio.wait_for(self.proc.wait(), 10)
            except (TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()
