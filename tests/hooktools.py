"""A webhook receiver for tests: a tiny HTTP/1.1 server on loopback built on asyncio streams.

It records every request and answers as told: `mode` is "ok" (200), "fail" (500), "gone"
(410) or "hang" (never answers); `script` overrides the mode for the next requests, one entry
each (a status code or "hang"); `down()` closes the port (connection refused) and `up()` opens
it again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["ok", "fail", "gone", "hang"]
Step = int | Literal["hang"]
_MODES: dict[str, Step] = {"ok": 200, "fail": 500, "gone": 410, "hang": "hang"}
_REASONS = {200: "OK", 410: "Gone", 429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when the request was read
    answered: int | None = None  # the status sent back (None: hung up without answering)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["x-wahttp-event-id"]


class Receiver:
    def __init__(self, *, delay: float = 0.0) -> None:
        self.mode: Mode = "ok"
        self.script: deque[Step] = deque()
        self.delay = delay  # seconds before each answer
        self.requests: list[Received] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._release = asyncio.Event()
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def up(self) -> None:
        if self._server is not None:
            return
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Close the port and every open connection (hung requests end unanswered)."""
        server, self._server = self._server, None
        self._release.set()
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)

    # -- what arrived ----------------------------------------------------------------------------
    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx."""
        return [r for r in self.requests if r.answered is not None and 200 <= r.answered < 300]

    def delivered_counts(self) -> Counter[str]:
        """Successful requests per event id."""
        return Counter(r.event_id for r in self.delivered())

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._changed.wait()

    async def wait_requests(self, count: int, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: len(self.requests) >= count, timeout)

    # -- the server ------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            request = await self._read(reader)
            if request is None:
                return
            self.requests.append(request)
            self._changed.set()
            step = self.script.popleft() if self.script else _MODES[self.mode]
            if step == "hang":
                await self._release.wait()
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            payload = b"{}"
            head = (
                f"HTTP/1.1 {step} {_REASONS.get(step, 'Status')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + payload)
            await writer.drain()
            request.answered = step
            self._changed.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Received | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Received(method, path, headers, body, time.monotonic())


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, every: float = 0.05
) -> None:
    """Poll an async condition until it holds (AssertionError at the deadline)."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"condition not met within {timeout}s") from None


class FakeResolver:
    """A resolver for OutboundGuard from a table of answers (change them between calls to play
    a DNS answer that changes); an unknown name does not resolve. Nothing is looked up."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = dict(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        if host not in self.answers:
            raise OSError("no such name")
        return self.answers[host]
