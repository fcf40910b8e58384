"""`wahttp sim` starts the sandbox, prints where it listens, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import httpx


async def test_sim_command_prints_endpoints_and_serves(tmp_path: Path) -> None:
    keys = tmp_path / "sim-keys.json"
    cmd = [sys.executable, "-m", "wahttp.cli", "sim", "--json", "--keys-file", str(keys)]
    infos = []
    for _ in range(2):  # twice: the keys file keeps the root key across restarts
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = json.loads(line)
        assert info["ws_url"].startswith("ws://127.0.0.1:") and info["ws_url"].endswith("/ws/chat")
        async with httpx.AsyncClient(base_url=info["admin_url"]) as admin:
            served = (await admin.get("/info")).json()
            assert served["root_key"] == info["root_key"] and served["ws_url"] == info["ws_url"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        infos.append(info)
    assert infos[0]["root_key"] == infos[1]["root_key"]
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
