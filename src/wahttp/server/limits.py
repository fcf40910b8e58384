"""Request size limits: an ASGI middleware that answers 413 to bodies over WAHTTP_MAX_BODY_BYTES.

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
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wahttp.server.errors import error_body


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodySizeLimit:
    """Refuse HTTP request bodies larger than `max_bytes` with a 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

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

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
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
        body = json.dumps(
            error_body(
                "payload_too_large",
                f"the request body is larger than {self.max_bytes} bytes",
                limit=self.max_bytes,
            ),
            separators=(",", ":"),
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
