"""Request size and time limits: an ASGI middleware that answers 413 to bodies over
WAHTTP_MAX_BODY_BYTES and 408 to bodies that take longer than WAHTTP_REQUEST_TIMEOUT to arrive.

A declared `Content-Length` over the limit is refused before any of the body is read. Bodies
without one (`Transfer-Encoding: chunked`) are counted as they stream to the app; the chunk
that crosses the limit is never handed on, the 413 goes out at once (if the app has not begun
its answer) and the app sees the client gone. Nothing is buffered here: the app holds at most
what it read, which is under the limit.

The 413 is in the API's error format, `{"error": {"code": "payload_too_large", "message",
"limit"}}`. The connection stays open: uvicorn reads and discards the rest of the body after
the answer (it does so for any answer sent before the body was read), so the client gets a
clean 413 instead of a reset connection while it is still sending. A client that sent
`Expect: 100-continue` is not asked for the body at all.

The whole body must arrive within `timeout` seconds of the request reaching the app (its headers
are complete by then): a client trickling it gets 408 `request_timeout` with `Connection: close`,
so uvicorn closes the socket instead of reading on; the app sees the client gone. Once the body is
complete, later `receive()` calls (an app listening for a disconnect) are not timed. A body the app
never reads is not this middleware's to time: `server/edge.py`'s protocol closes such a connection.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wahttp.server.errors import send_error


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodySizeLimit:
    """Refuse HTTP request bodies larger than `max_bytes` (413) or slower than `timeout` (408)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float | None = None) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send)
            return

        received = 0
        refused = False
        started = False
        complete = False
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout

        async def limited_receive() -> Message:
            nonlocal received, refused, complete
            if refused:
                return {"type": "http.disconnect"}
            if complete or deadline is None:
                message = await receive()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    refused = True
                    if not started:
                        await self._timed_out(send)
                    return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # our 413 went out (or the answer is cut short): drop the app's
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _too_large(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_bytes} bytes",
            limit=self.max_bytes,
        )

    async def _timed_out(self, send: Send) -> None:
        await send_error(
            send,
            408,
            "request_timeout",
            f"the request body did not arrive within {self.timeout:g} seconds",
            headers=[(b"connection", b"close")],
            timeout=self.timeout,
        )
