"""The only module of wahttp.wa that opens a socket: a WebSocket carrying Noise frames."""

from __future__ import annotations

import asyncio
from typing import Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed as WSClosed
from websockets.exceptions import InvalidHandshake, InvalidURI

from wahttp.wa.close import CloseCode
from wahttp.wa.errors import ConnectionClosed

ORIGIN = "https://web.whatsapp.com"
# A drop without a WhatsApp reason is CloseCode.TRANSPORT_CLOSED (428), as Baileys reports it.


class Transport(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def recv(self) -> bytes: ...

    async def close(self) -> None: ...


class WebSocketTransport:
    """Binary WebSocket messages in and out; every failure surfaces as ConnectionClosed."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    @classmethod
    async def connect(cls, url: str, timeout: float = 20.0) -> WebSocketTransport:
        try:
            ws = await asyncio.wait_for(
                connect(
                    url,
                    origin=websockets.Origin(ORIGIN),
                    max_size=16 * 1024 * 1024,
                    ping_interval=None,  # WhatsApp keepalive is an iq, not a WebSocket ping
                    open_timeout=timeout,
                ),
                timeout,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectionClosed(CloseCode.TRANSPORT_CLOSED, f"cannot connect: {exc}") from exc
        return cls(ws)

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data)
        except WSClosed as exc:
            raise ConnectionClosed(CloseCode.TRANSPORT_CLOSED, "socket closed") from exc

    async def recv(self) -> bytes:
        try:
            msg = await self._ws.recv()
        except WSClosed as exc:
            raise ConnectionClosed(CloseCode.TRANSPORT_CLOSED, "socket closed") from exc
        return msg if isinstance(msg, bytes) else msg.encode()

    async def close(self) -> None:
        await self._ws.close()
