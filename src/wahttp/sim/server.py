"""The simulated WhatsApp server: WebSocket endpoint, registration and login, stanza routing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.server import Server, serve
from websockets.asyncio.server import ServerConnection as WSConnection
from websockets.http11 import Request, Response

from wahttp.sim import account, calls, linking, pair_code
from wahttp.sim import iq as iq_handlers
from wahttp.sim.connection import ServerConnection
from wahttp.sim.faults import Faults
from wahttp.sim.media import MediaStore
from wahttp.sim.network import Network
from wahttp.sim.offline import OFFLINE_BATCH_WAIT, OfflineDelivery, OfflineStats
from wahttp.sim.routing import Router
from wahttp.wa.binary import Node
from wahttp.wa.certs import issue_cert_chain
from wahttp.wa.crypto import KeyPair

log = logging.getLogger(__name__)
WS_PATH = "/ws/chat"


@dataclass(frozen=True, slots=True)
class SimKeys:
    """The simulator's trust anchor and its server key; the root key is what clients pin."""

    root: KeyPair
    static: KeyPair

    @classmethod
    def generate(cls) -> SimKeys:
        return cls(KeyPair.generate(), KeyPair.generate())


class SimServer:
    """Listens on loopback; everything it knows lives in `network`."""

    def __init__(self, keys: SimKeys | None = None, network: Network | None = None) -> None:
        self.keys = keys or SimKeys.generate()
        self.static_key = self.keys.static
        self.cert_chain = issue_cert_chain(self.keys.root, self.keys.static.public)
        self.network = network or Network()
        self.router = Router(self.network)
        self.network.privacy.bind(self)  # tokens keyed by our root key: valid across restarts
        self._server: Server | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.live: set[ServerConnection] = set()  # every stream past the WebSocket upgrade
        self.faults = Faults(self)
        self.state_file: Path | None = None  # where save_state() writes (wahttp sim --state-file)
        self.replaced = 0  # streams closed with 440 because the same device connected again
        # The oldest web client version let in (None: any); older ones get <failure reason=405>.
        self.min_version: tuple[int, int, int] | None = None
        self.outdated_refused = 0
        # The media host (sim/media.py), served by the admin API's server; the runner sets its
        # host:port.
        self.media = MediaStore()
        # Seconds a login's backlog waits for the client's <offline_batch> (offline.py).
        self.offline_batch_wait = OFFLINE_BATCH_WAIT
        self.offline_stats = OfflineStats()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def root_public(self) -> bytes:
        return self.keys.root.public

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            max_size=16 * 1024 * 1024,
            ping_interval=None,
            compression=None,
        )
        sock = next(iter(self._server.sockets))
        self.host, self.port = sock.getsockname()[:2]
        log.info("simulator listening on %s", self.url)

    async def stop(self) -> None:
        await self.faults.shutdown()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def go_down(self) -> int:
        """Stop listening and abort every connection at once, as a crashing server does; all
        state (accounts, devices, mailboxes) stays. Returns how many streams were cut."""
        server, self._server = self._server, None
        if server is None:
            return 0
        server.close(close_connections=False)
        conns = list(self.live)
        for conn in conns:
            conn.abort()
        for ws in list(server.connections):  # upgraded but not yet handed to _handle
            ws.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
        log.info("simulator down: %d connections cut", len(conns))
        return len(conns)

    async def come_up(self, attempts: int = 50) -> None:
        """Listen again on the same address and port (retrying while the port is not free)."""
        for attempt in range(attempts):
            try:
                await self.start(self.host, self.port)
                return
            except OSError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.1)

    def _process_request(self, ws: WSConnection, request: Request) -> Response | None:
        if self.faults.refusing:
            # Reset the TCP connection, as an overloaded or unreachable edge does. (An HTTP 503
            # on the upgrade leaves Baileys waiting forever: its socket never reports a close.)
            self.faults.refused_connections += 1
            ws.transport.abort()
            return ws.respond(503, "Service Unavailable\n")
        if request.path.split("?")[0] == WS_PATH:
            return None
        return ws.respond(404, "Not Found\n")

    async def _handle(self, ws: WSConnection) -> None:
        if self._server is None:  # went down while this one was upgrading
            ws.transport.abort()
            return
        conn = ServerConnection(self, ws)
        self.live.add(conn)
        try:
            await conn.serve()
        finally:
            self.live.discard(conn)

    # -- stream life cycle -------------------------------------------------------------------
    def outdated(self, conn: ServerConnection) -> bool:
        """The client announced a version older than `min_version`."""
        if self.min_version is None:
            return False
        v = conn.payload.userAgent.appVersion
        return (v.primary, v.secondary, v.tertiary) < self.min_version

    async def on_login(self, conn: ServerConnection) -> None:
        payload = conn.payload
        if self.outdated(conn):
            # What the real server does with a stale client: Baileys ends with statusCode 405,
            # whatsmeow with ErrClientOutdated.
            self.outdated_refused += 1
            await conn.send_node(Node("failure", {"reason": "405", "location": "sim"}))
            await conn.close()
            return
        if payload.HasField("devicePairingData"):
            await linking.start_registration(self, conn)
        elif payload.HasField("username"):
            await self._login(conn)
        else:
            await conn.send_node(Node("failure", {"reason": "400"}))
            await conn.close()

    async def _login(self, conn: ServerConnection) -> None:
        number = str(conn.payload.username)
        device = self.network.device(number, conn.payload.device)
        if device is None or device.noise_public != conn.client_static:
            await conn.send_node(Node("failure", {"reason": "401", "location": "sim"}))
            await conn.close()
            return
        key = str(device.jid)
        previous = self.network.connections.get(key)
        if previous is not None:
            # Only one stream per device: the older one is told it was replaced (440).
            self.replaced += 1
            replaced = Node("conflict", {"type": "replaced"})
            asyncio.create_task(previous.stream_error(None, replaced))  # noqa: RUF006
        conn.device = device
        if conn.payload.pushName:
            device.push_name = conn.payload.pushName
        self.network.connections[key] = conn
        now = str(int(time.time()))
        success = Node(
            "success",
            {
                "t": now,
                "props": "1",
                "abprops": "1",
                "location": "sim",
                "creation": now,
                "lid": str(device.lid),
            },
        )
        await conn.send_node(success)
        await account.before_backlog(self, conn)
        # The backlog drains beside the stream's reader: it waits for the client's
        # <offline_batch>, which that reader must be free to read (offline.py).
        backlog = self.router.take_backlog((device.number, device.device_id))
        conn.start_offline(
            OfflineDelivery(conn, backlog, wait=self.offline_batch_wait, stats=self.offline_stats)
        )

    def on_closed(self, conn: ServerConnection) -> None:
        if conn.device is not None:
            key = str(conn.device.jid)
            if self.network.connections.get(key) is conn:
                del self.network.connections[key]
        for ref in conn.refs:
            if self.network.registrations.get(ref) is conn:
                del self.network.registrations[ref]
        pair_code.forget(self, conn)

    # -- stanzas -----------------------------------------------------------------------------
    async def dispatch(self, conn: ServerConnection, node: Node) -> None:
        if conn.stalled:
            return
        if node.tag == "iq" and node.attr("type") in ("result", "error"):
            fut = conn.pending.pop(node.attr("id") or "", None)
            if fut is not None and not fut.done():
                fut.set_result(node)
            return
        if node.tag == "iq":
            await iq_handlers.handle(self, conn, node)
            return
        device = conn.device
        if device is None:
            return
        key = (device.number, device.device_id)
        if node.tag == "message":
            ack = await self.router.route_message(key, node, device.push_name)
            await conn.send_node(ack)
        elif node.tag == "receipt":
            await self.router.route_receipt(key, node)
        elif node.tag == "ack":
            self.router.acked(key, node)
        elif node.tag == "call":
            await calls.on_call(self, conn, node)
        elif node.tag == "ib":
            account.on_ib(self, conn, node)
        # presence is accepted silently.

    # -- admin actions -----------------------------------------------------------------------
    async def unlink(self, number: str, device_id: int) -> bool:
        """The phone removes a linked device: its stream gets a device_removed conflict (401)."""
        device = self.network.remove_device(number, device_id)
        if device is None:
            return False
        self.router.forget_device((number, device_id))
        await self.router.device_changed(number, device_id, "remove")
        conn = self.network.connections.get(str(device.jid))
        if conn is not None:
            await conn.stream_error(401, Node("conflict", {"type": "device_removed"}))
        return True

    def connection(self, jid: str) -> ServerConnection | None:
        return self.network.connections.get(jid)

    async def save_state(self) -> Path:
        """Write accounts, devices, keys, phones and mailboxes to `state_file`."""
        from wahttp.sim.state import save_state

        if self.state_file is None:
            raise ValueError("the simulator runs without a state file")
        await save_state(self, self.state_file)
        log.info("state saved to %s", self.state_file)
        return self.state_file
