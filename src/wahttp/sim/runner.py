"""Start the simulator (WebSocket server + admin API) inside the current event loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from wahttp.sim.admin import create_admin_app
from wahttp.sim.server import SimKeys, SimServer
from wahttp.sim.state import read_state, restore_state, state_keys
from wahttp.wa.crypto import KeyPair


@dataclass
class SimHandle:
    server: SimServer
    admin_url: str
    _uvicorn: uvicorn.Server
    _task: asyncio.Task[None]

    @property
    def ws_url(self) -> str:
        return self.server.url

    @property
    def root_key_b64(self) -> str:
        return base64.b64encode(self.server.root_public).decode()

    def env(self) -> dict[str, str]:
        """The client settings that point wahttp at this simulator."""
        return {"WAHTTP_WA_URL": self.ws_url, "WAHTTP_WA_ROOT_KEY": self.root_key_b64}

    async def stop(self) -> None:
        """Stop both servers; with a state file, the state is saved last."""
        self._uvicorn.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)
        await self.server.stop()
        if self.server.state_file is not None:
            await self.server.save_state()


def load_keys(path: Path | None) -> SimKeys:
    """Keys from a file (created on first use) so the root key survives simulator restarts."""
    if path is None:
        return SimKeys.generate()
    if path.exists():
        data = json.loads(path.read_text())
        return SimKeys(
            KeyPair.from_private(base64.b64decode(data["root"])),
            KeyPair.from_private(base64.b64decode(data["static"])),
        )
    keys = SimKeys.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "root": base64.b64encode(keys.root.private).decode(),
        "static": base64.b64encode(keys.static.private).decode(),
    }
    path.write_text(json.dumps(payload))
    path.chmod(0o600)
    return keys


async def start_sim(
    host: str = "127.0.0.1",
    port: int = 0,
    admin_port: int = 0,
    keys: SimKeys | None = None,
    state_file: Path | None = None,
) -> SimHandle:
    """Start the simulator. With `state_file`, the state saved there (if any) is loaded, its
    keys used unless `keys` are given, and the state is saved there again at `stop()`."""
    state = read_state(state_file) if state_file is not None else None
    if keys is None and state is not None:
        keys = state_keys(state)
    server = SimServer(keys)
    server.state_file = state_file
    if state is not None:
        await restore_state(server, state)
    await server.start(host, port)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, admin_port))
    bound_port = sock.getsockname()[1]
    # The media host is served by the admin API's server (sim/media.py).
    server.media.host = f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"
    config = uvicorn.Config(create_admin_app(server), log_level="warning", lifespan="off")
    userver = uvicorn.Server(config)
    task = asyncio.create_task(userver.serve(sockets=[sock]))
    while not userver.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return SimHandle(server, f"http://{host}:{bound_port}", userver, task)
