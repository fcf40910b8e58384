"""The HTTP edge: what a client may hold and how long, response headers, and the access log.

- `GuardedH11Protocol` (uvicorn's h11 protocol, passed as `http=`): a request's headers must
  arrive within WAHTTP_HEADER_TIMEOUT of its first byte (of the connection opening, for the
  first request), else 408 and the connection is closed; uvicorn itself would wait forever for
  headers, and a connection that sends nothing would stay open for good. A body that nobody
  reads (the app answered without it, and uvicorn discards the rest) must end within
  WAHTTP_REQUEST_TIMEOUT (plus a second) too, else the connection is closed; a body the app
  reads is timed by `limits.BodySizeLimit`, which answers 408 itself. Past
  WAHTTP_MAX_CONNECTIONS open connections a new one gets 503 `overloaded` and is closed.
  Headers are bounded by h11 (16 KiB: 400), idle keep-alive connections close after
  WAHTTP_IDLE_TIMEOUT.
- `ResponseHeaders` (ASGI): every answer gets `Cache-Control: no-store` (some carry secrets:
  a new key, a webhook secret; no answer of this API is worth caching) unless it set its own
  (the docs' static assets), and `X-Content-Type-Options: nosniff`.
- `RedactQuery` (a logging filter on `uvicorn.access`): query values other than the API's own
  parameters are logged as `[redacted]`. Keys are only accepted in headers, but a client may put
  one in the URL (`?api_key=...`), and an access log must not keep it.

Keys are checked before a body is read or a request forwarded by `auth.KeyGate`.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, quote

import h11
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from wahttp.server.auth import KEY_TAG
from wahttp.server.errors import error_body
from wahttp.server.settings import Settings

log = logging.getLogger(__name__)

NO_STORE = b"no-store"
# h11's limit on a request line and headers (uvicorn's default too), stated here to be explicit.
MAX_HEADER_BYTES = 16 * 1024
# A body nobody reads is cut this long after WAHTTP_REQUEST_TIMEOUT: the app's own 408 goes first.
UNREAD_BODY_GRACE = 1.0
REDACTED = "[redacted]"


def _raw_response(status: int, code: str, message: str, extra: dict[str, str]) -> bytes:
    body = json.dumps(error_body(code, message), separators=(",", ":")).encode()
    phrase = http.HTTPStatus(status).phrase
    head = [
        f"HTTP/1.1 {status} {phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "cache-control: no-store",
        "connection: close",
        *(f"{name}: {value}" for name, value in extra.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, an unread-body deadline and a cap."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # "headers" or "body" while a deadline is armed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            log.warning("over %d open connections: refusing one", self.max_connections)
            self._refuse(
                503,
                "overloaded",
                "too many open connections; retry shortly",
                {"retry-after": "1"},
            )
            return
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm("headers")  # the first bytes of a new request on a kept-alive connection
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        """Move the deadline along with the request: headers, then a body, then none."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._phase == "body" or not self.conn.trailing_data[0]:
                self._disarm()  # between requests: the keep-alive timer's business
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body")
        else:  # DONE, MUST_CLOSE, CLOSED, ERROR: nothing more to wait for from the client
            self._disarm()

    def _arm(self, phase: str) -> None:
        self._disarm()
        delay = self.header_timeout if phase == "headers" else self.body_timeout + UNREAD_BODY_GRACE
        self._phase = phase
        self._deadline = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = None

    def _expired(self) -> None:
        phase, self._deadline, self._phase = self._phase, None, None
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        if phase == "headers" and idle:
            self._refuse(
                408,
                "request_timeout",
                f"the request headers did not arrive within {self.header_timeout:g} seconds",
                {},
            )
            return
        # A body still coming after its deadline: nobody is answering it any more (the app
        # would have sent its 408 by now). Cut the connection; the app, if running, sees it gone.
        self.transport.close()

    def _refuse(self, status: int, code: str, message: str, extra: dict[str, str]) -> None:
        self._disarm()
        self.transport.write(_raw_response(status, code, message, extra))
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedH11Protocol]:
    """The protocol class with this service's limits."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.request_timeout,
            "max_connections": settings.max_connections,
        },
    )


class ResponseHeaders:
    """`Cache-Control: no-store` (unless the answer set its own) and `nosniff` on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if b"cache-control" not in names:
                    headers.append((b"cache-control", NO_STORE))
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- the access log ------------------------------------------------------------------------------


def query_parameters(app: FastAPI) -> frozenset[str]:
    """The names of every query parameter of the app's API (their values are logged as sent)."""
    return frozenset(
        str(param["name"])
        for operations in app.openapi().get("paths", {}).values()
        for operation in operations.values()
        if isinstance(operation, dict)
        for param in operation.get("parameters", ())
        if param.get("in") == "query"
    )


def redact_query(target: str, keep: frozenset[str]) -> str:
    """`path?query` with every value of a parameter outside `keep` (or shaped like a key) hidden."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        shown = value if name in keep and not value.startswith(KEY_TAG) else REDACTED
        parts.append(f"{quote(name, safe='')}={quote(shown, safe='[]')}")
    return f"{path}?{'&'.join(parts)}" if parts else path


class RedactQuery(logging.Filter):
    """Rewrites uvicorn's access lines: `client - "METHOD path?query HTTP/x" status`."""

    def __init__(self, keep: frozenset[str]) -> None:
        super().__init__()
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_query(args[2], self.keep), args[3], args[4])
        return True


def install_access_log_filter(app: FastAPI) -> RedactQuery:
    """Put a RedactQuery on uvicorn's access logger (after uvicorn configured its logging)."""
    access = logging.getLogger("uvicorn.access")
    for old in [f for f in access.filters if isinstance(f, RedactQuery)]:
        access.removeFilter(old)
    redact = RedactQuery(query_parameters(app))
    access.addFilter(redact)
    return redact


def uvicorn_config(app: FastAPI, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's Config for the service: the guarded protocol, timeouts, a redacted access log.

    `options` go to uvicorn.Config over these (tests pass `log_level`, `lifespan`).
    """
    values: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "timeout_graceful_shutdown": int(settings.shutdown_timeout),
        "http": guarded_protocol(settings),
        "timeout_keep_alive": settings.idle_timeout,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
    values.update(options)
    config = uvicorn.Config(app, **values)
    install_access_log_filter(app)  # Config() has just (re)configured uvicorn's loggers
    return config
