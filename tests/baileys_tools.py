"""Run the real Baileys client (tests/interop/baileys_driver.mjs) and read its events."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from wahttp.sim.runner import SimHandle

INTEROP_DIR = Path(__file__).parent / "interop"


def require_node() -> None:
    """Skip when Node or the npm packages are absent; CI installs both, so there it always runs."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (INTEROP_DIR / "node_modules" / "baileys").is_dir():
        pytest.skip("run `npm ci` in tests/interop first")


def node_json(script: Path, *args: str, stdin: str | None = None, timeout: float = 60) -> Any:
    """Run a Node oracle script of tests/interop (skipping without Node) and parse its JSON."""
    require_node()
    proc = subprocess.run(
        ["node", str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        cwd=INTEROP_DIR,
    )
    return json.loads(proc.stdout)


class Baileys:
    """One Baileys socket driven through the driver's JSON-lines protocol.

    A reader task collects every event as it comes; `next(kind)` returns each event of the
    given kinds once, in order, without dropping the others.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.noise: list[str] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._eof = False
        self._reader = asyncio.create_task(self._read())

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
            limit=16 * 1024 * 1024,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                try:
                    event: dict[str, Any] = json.loads(line)
                except json.JSONDecodeError:
                    self.noise.append(line.decode(errors="replace"))  # not one of our events
                    continue
                self.events.append(event)
                self._changed.set()
        finally:
            self._eof = True
            self._changed.set()

    async def next(self, *kinds: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next unseen event of one of these kinds."""
        async with asyncio.timeout(timeout):
            while True:
                for index, event in enumerate(self.events):
                    if index in self._taken:
                        continue
                    if event.get("event") == "error":
                        raise AssertionError(f"Baileys driver error: {event}")
                    if event.get("event") in kinds:
                        self._taken.add(index)
                        return event
                if self._eof:
                    raise AssertionError(f"Baileys exited before {kinds}; saw {self.events}")
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]

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
        self._reader.cancel()


async def link_baileys_by_code(
    sim: SimHandle, admin: httpx.AsyncClient, auth_dir: Path, number: str
) -> dict[str, object]:
    """Pair a Baileys auth folder by code; returns the device the phone linked."""
    baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, auth_dir, "--pair-number", number)
    try:
        code = (await baileys.next("pairing-code"))["code"]
        assert len(code) == 8
        resp = await admin.post(f"/phones/{number}/pairing-code", json={"code": code})
        assert resp.status_code == 200, resp.text
        device: dict[str, object] = resp.json()
        await baileys.next("paired")
        opened = await baileys.next("open")
        assert opened["me"]["id"] == device["jid"]
    finally:
        await baileys.stop()
    return device
