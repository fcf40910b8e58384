"""The request size middleware of server/limits.py, driven with raw ASGI messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from wahttp.server.limits import BodySizeLimit


def http_scope(content_length: int | None = None) -> Scope:
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {"type": "http", "method": "POST", "path": "/x", "headers": headers}


class Client:
    """Feeds body chunks on demand and records what the server sends."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.pulled >= len(self.chunks):
            return {"type": "http.disconnect"}
        chunk = self.chunks[self.pulled]
        self.pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < len(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status

    def body(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


class ReadingApp:
    """Reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.called = False
        self.seen = 0
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                break
            self.seen += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = json.dumps({"seen": self.seen}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    app = ReadingApp()
    client = Client([b"x" * 100])
    await BodySizeLimit(app, 64)(http_scope(100), client.receive, client.send)
    assert not app.called and client.pulled == 0
    assert client.status() == 413
    assert client.body() == {
        "error": {
            "code": "payload_too_large",
            "message": "the request body is larger than 64 bytes",
            "limit": 64,
        }
    }
    assert (b"content-type", b"application/json") in client.sent[0]["headers"]


async def test_a_streamed_body_is_cut_at_the_chunk_that_crosses_the_limit() -> None:
    app = ReadingApp()
    client = Client([b"x" * 40] * 100)  # 4000 bytes, chunked: no content-length
    await BodySizeLimit(app, 100)(http_scope(), client.receive, client.send)
    assert client.pulled == 3  # 40, 80, 120: nothing read after the crossing chunk
    assert app.seen == 80 and app.disconnected  # the app never got more than the limit
    assert client.status() == 413 and len(client.sent) == 2  # the app's answer was dropped


async def test_bodies_within_the_limit_pass_untouched() -> None:
    for chunks, declared in (([b"x" * 50, b"y" * 50], None), ([b"z" * 100], 100), ([b""], None)):
        app = ReadingApp()
        client = Client(chunks)
        await BodySizeLimit(app, 100)(http_scope(declared), client.receive, client.send)
        assert client.status() == 200 and client.body() == {"seen": sum(map(len, chunks))}


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing() -> Message:
        return {}

    async def drop(message: Message) -> None:
        pass

    await BodySizeLimit(app, 1)({"type": "lifespan"}, nothing, drop)
    await BodySizeLimit(app, 1)({"type": "websocket", "headers": []}, nothing, drop)
    assert seen == ["lifespan", "websocket"]


class SlowClient(Client):
    """Sends a chunk every `gap` seconds, then, once the body is complete, waits to disconnect."""

    def __init__(self, chunks: list[bytes], gap: float, linger: float = 0.0) -> None:
        super().__init__(chunks)
        self.gap = gap
        self.linger = linger

    async def receive(self) -> Message:
        if self.pulled >= len(self.chunks):
            await asyncio.sleep(self.linger)
            return {"type": "http.disconnect"}
        await asyncio.sleep(self.gap)
        return await super().receive()


async def test_a_body_slower_than_the_timeout_gets_408_and_the_connection_closes() -> None:
    app = ReadingApp()
    client = SlowClient([b"x" * 10] * 100, gap=0.05)  # 5 s to send it all
    limit = BodySizeLimit(app, 10_000, timeout=0.3)
    async with asyncio.timeout(5):
        await limit(http_scope(1000), client.receive, client.send)
    assert app.disconnected and 2 <= client.pulled <= 10
    assert client.status() == 408 and len(client.sent) == 2  # the app's answer was dropped
    assert client.body()["error"]["code"] == "request_timeout"
    assert (b"connection", b"close") in client.sent[0]["headers"]


async def test_after_a_complete_body_receive_is_not_timed() -> None:
    seen: list[str] = []

    async def listening_app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        seen.append((await receive())["type"])  # waits longer than the timeout for the client

    client = SlowClient([b"a", b"b"], gap=0.05, linger=0.6)
    await BodySizeLimit(listening_app, 100, timeout=0.3)(http_scope(2), client.receive, client.send)
    assert seen == ["http.disconnect"] and client.sent == []  # the client's, not a 408
