"""The original README's flow against real `wahttp sim` and `wahttp serve` processes.

No DATABASE_URL: `wahttp serve` starts its embedded PostgreSQL under its data folder, as on a
fresh machine. SIGTERM shuts it down cleanly and a second start reconnects without pairing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from servicetools import wait_status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def sim_process(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wahttp.cli", "sim", "--json", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    info: dict[str, str] = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    try:
        yield info
    finally:
        proc.terminate()
        await proc.wait()


async def _serve(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    out = log.open("ab")  # stderr and stdout (where uvicorn writes its access lines)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wahttp.cli", "serve", env=env, stdout=out, stderr=out
    )


async def _wait_up(api: httpx.AsyncClient, proc: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(90):  # the first start runs initdb
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"wahttp serve exited with {proc.returncode}")
            try:
                if (await api.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def _stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 30)


async def test_readme_flow_with_processes(sim_process: dict[str, str], tmp_path: Path) -> None:
    port = _free_port()
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        WAHTTP_DATA_DIR=str(tmp_path / "data"),
        WAHTTP_AUTH_DIR=str(tmp_path / "auth_sessions"),
        WAHTTP_WA_URL=sim_process["ws_url"],
        WAHTTP_WA_ROOT_KEY=sim_process["root_key"],
        WAHTTP_API_KEY=secrets.token_urlsafe(24),
    )
    log = tmp_path / "serve.log"
    admin = httpx.AsyncClient(base_url=sim_process["admin_url"], timeout=30)
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        timeout=30,
        headers={"X-Api-Key": env["WAHTTP_API_KEY"]},
    )
    proc = await _serve(env, log)
    try:
        await _wait_up(api, proc)
        number = (await admin.post("/phones", json={})).json()["number"]
        session_id = (await api.post("/sessions")).json()["id"]
        pair = await api.post(f"/sessions/{session_id}/pair-request", json={"number": number})
        code = pair.json()["pairingCode"]
        resp = await admin.post(f"/phones/{number}/pairing-code", json={"code": code})
        assert resp.status_code == 200, resp.text
        jid = (await wait_status(api, session_id, "open"))["jid"]
        # A key in a query string (never how keys are sent) stays out of the access log.
        leaked = await api.get("/sessions", params={"api_key": env["WAHTTP_API_KEY"]})
        assert leaked.status_code == 200

        assert await _stop(proc) == 0  # graceful: closes the socket, flushes, exits 0
        phone = (await admin.get(f"/phones/{number}")).json()
        assert phone["devices"][0]["connected"] is False

        proc = await _serve(env, log)
        await _wait_up(api, proc)
        status = await wait_status(api, session_id, "open")
        assert status["jid"] == jid  # no pairing again
        assert (await api.delete(f"/sessions/{session_id}")).status_code == 200
        assert (await admin.get(f"/phones/{number}")).json()["devices"] == []
        assert (await api.get("/sessions")).json() == []
        assert await _stop(proc) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await admin.aclose()
        await api.aclose()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert code not in text  # no pairing code in the logs
    assert env["WAHTTP_API_KEY"] not in text  # nor the API key
