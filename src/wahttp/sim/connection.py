"""One client's WebSocket on the simulated server: Noise handshake, then nodes in and out."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection as WSConnection
from websockets.exceptions import ConnectionClosed as WSClosed

from wahttp.wa.binary import Node, decode_node, encode_node
from wahttp.wa.crypto import KeyPair
from wahttp.wa.errors import WAError
from wahttp.wa.noise import ServerHandshake, ServerIntroReader, TransportCipher, encode_frame
from wahttp.wa.proto import client_payload_pb2 as cp

if TYPE_CHECKING:
    from wahttp.sim.network import Device
    from wahttp.sim.offline import OfflineDelivery
    from wahttp.sim.server import SimServer

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT = 20.0
_conn_ids = itertools.count(1)


class ServerConnection:
    """Server side of one stream. `device` is set once a linked device has logged in."""

    def __init__(self, server: SimServer, ws: WSConnection) -> None:
        self.server = server
        self.ws = ws
        self.conn_id = next(_conn_ids)
        self.reader = ServerIntroReader()
        self.cipher: TransportCipher | None = None
        self.client_static = b""
        self.payload = cp.ClientPayload()
        self.device: Device | None = None
        self.registration: cp.ClientPayload.DevicePairingRegistrationData | None = None
        self.refs: list[str] = []
        self.pending: dict[str, asyncio.Future[Node]] = {}
        self.closed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._queue: list[bytes] = []
        self._ids = itertools.count(1)
        self.active = False
        self.stalled = False  # fault injection: neither read nor write, like a dead link
        self._stall_timer: asyncio.TimerHandle | None = None
        self.pings = 0
        self.offline_batches = 0  # <ib><offline_batch> answers to an offline preview
        self.offline: OfflineDelivery | None = None  # this login's backlog (offline.py)
        self._offline_task: asyncio.Task[None] | None = None

    def new_id(self) -> str:
        return f"sim.{self.conn_id}.{next(self._ids)}"

    async def serve(self) -> None:
        try:
            await asyncio.wait_for(self._handshake(), HANDSHAKE_TIMEOUT)
        except (WAError, TimeoutError, WSClosed) as exc:
            # A garbled or abandoned handshake ends this connection only.
            log.info("conn %d: handshake refused: %s", self.conn_id, type(exc).__name__)
            await self.ws.close(1002, "handshake failed")
            return
        try:
            await self.server.on_login(self)
            while True:
                node = await self.recv_node()
                await self.server.dispatch(self, node)
        except (WSClosed, WAError) as exc:
            log.debug("conn %d closed: %s", self.conn_id, type(exc).__name__)
        finally:
            self.closed.set()
            if self._offline_task is not None:
                self._offline_task.cancel()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
            for fut in self.pending.values():
                fut.cancel()
            self.server.on_closed(self)

    async def _recv_frame(self) -> bytes:
        while not self._queue:
            data = await self.ws.recv()
            if isinstance(data, str):
                data = data.encode()
            self._queue.extend(self.reader.feed(data))
        return self._queue.pop(0)

    async def _handshake(self) -> None:
        hs = ServerHandshake(KeyPair.generate(), self.server.static_key, self.server.cert_chain)
        hs.read_hello(await self._recv_frame())
        await self.ws.send(encode_frame(hs.server_hello()))
        finish = hs.read_finish(await self._recv_frame())
        self.client_static = finish.client_static
        try:
            self.payload = cp.ClientPayload.FromString(finish.client_payload)
        except Exception as exc:  # protobuf DecodeError
            raise WAError("malformed ClientPayload") from exc
        self.cipher = hs.transport()

    def start_offline(self, delivery: OfflineDelivery) -> None:
        """Drain a login's backlog in the background (the reader reads the client's asks)."""
        self.offline = delivery
        self._offline_task = asyncio.create_task(delivery.run(), name=f"offline-{self.conn_id}")
        self._offline_task.add_done_callback(self._offline_done)

    def _offline_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("conn %d: offline delivery failed", self.conn_id, exc_info=task.exception())

    async def recv_node(self) -> Node:
        assert self.cipher is not None
        return decode_node(self.cipher.decrypt(await self._recv_frame()))

    async def send_node(self, node: Node) -> None:
        if self.cipher is None or self.stalled:
            return
        data = encode_node(node)
        async with self._send_lock:
            with contextlib.suppress(WSClosed):
                await self.ws.send(encode_frame(self.cipher.encrypt(data)))

    async def query(self, node: Node, timeout: float = 30.0) -> Node:
        """Send an iq to the client and wait for its answer."""
        node.attrs.setdefault("id", self.new_id())
        fut: asyncio.Future[Node] = asyncio.get_running_loop().create_future()
        self.pending[node.attrs["id"]] = fut
        try:
            await self.send_node(node)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(node.attrs["id"], None)

    async def close(self, code: int = 1000) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code)

    def abort(self) -> None:
        """Drop the TCP connection without any goodbye, like a network failure."""
        self.ws.transport.abort()

    def stall(self, seconds: float | None = None) -> None:
        """Stop reading and writing, like a link that went dead; after `seconds` (if given) the
        socket is aborted, as a dead TCP connection eventually ends."""
        self.stalled = True
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if seconds is not None and not self.closed.is_set():
            self._stall_timer = asyncio.get_running_loop().call_later(seconds, self.abort)

    async def stream_error(self, code: int | None = None, child: Node | None = None) -> None:
        """Send <stream:error> and close, as the real server does."""
        attrs = {"code": str(code)} if code is not None else {}
        await self.send_node(Node("stream:error", attrs, [child] if child else None))
        await self.close()

    def new_refs(self, count: int = 6) -> list[str]:
        self.refs = [f"2@{secrets.token_urlsafe(48)}" for _ in range(count)]
        return self.refs
