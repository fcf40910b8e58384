"""An open, authenticated stream: Noise handshake over a transport, then nodes in and out."""

from __future__ import annotations

import asyncio
import collections
import logging

from wahttp.wa.auth.creds import Creds
from wahttp.wa.binary import Node, decode_node, encode_node
from wahttp.wa.certs import verify_cert_chain
from wahttp.wa.client.config import ClientConfig
from wahttp.wa.client.payload import payload_for
from wahttp.wa.close import CloseCode
from wahttp.wa.crypto import KeyPair
from wahttp.wa.errors import ConnectionClosed, HandshakeError
from wahttp.wa.noise import ClientHandshake, FrameReader, TransportCipher, encode_frame, intro
from wahttp.wa.transport import Transport, WebSocketTransport

log = logging.getLogger(__name__)


class NodeConnection:
    """Encrypts nodes into frames and back. One writer at a time is enforced by a lock."""

    def __init__(self, transport: Transport, cipher: TransportCipher, reader: FrameReader) -> None:
        self._transport = transport
        self._cipher = cipher
        self._reader = reader
        self._pending: collections.deque[bytes] = collections.deque()
        self._send_lock = asyncio.Lock()

    async def send_node(self, node: Node) -> None:
        data = encode_node(node)
        async with self._send_lock:
            await self._transport.send(encode_frame(self._cipher.encrypt(data)))

    async def recv_node(self) -> Node:
        while not self._pending:
            self._pending.extend(self._reader.feed(await self._transport.recv()))
        return decode_node(self._cipher.decrypt(self._pending.popleft()))

    async def close(self) -> None:
        await self._transport.close()


async def open_connection(
    creds: Creds, config: ClientConfig, transport: Transport | None = None
) -> NodeConnection:
    """Connect and run the Noise handshake, verifying the server's certificate chain."""
    if transport is None:
        transport = await WebSocketTransport.connect(config.url, config.connect_timeout)
    try:
        return await asyncio.wait_for(_handshake(transport, creds, config), config.connect_timeout)
    except TimeoutError as exc:
        await transport.close()
        raise ConnectionClosed(CloseCode.CONNECTION_LOST, "handshake timed out") from exc
    except BaseException:
        await transport.close()
        raise


async def _handshake(transport: Transport, creds: Creds, config: ClientConfig) -> NodeConnection:
    hs = ClientHandshake(KeyPair.generate(), creds.noise_key)
    reader = FrameReader()
    await transport.send(intro(creds.routing_info) + encode_frame(hs.hello()))
    frames: list[bytes] = []
    while not frames:
        frames = reader.feed(await transport.recv())
    hello = hs.read_server_hello(frames[0])
    verify_cert_chain(hello.cert_chain, hello.server_static, config.root_key)
    await transport.send(encode_frame(hs.finish(payload_for(creds, config))))
    if len(frames) > 1:
        raise HandshakeError("server sent data before the handshake finished")
    log.debug("noise handshake complete")
    return NodeConnection(transport, hs.transport(), reader)
