"""The outermost check of every request: no control characters in its path or query.

A NUL (or any C0 control character, or DEL) in a URL is never valid input here: no session id,
message id, status or page token holds one. Left to the app, a decoded `%00` in a session id
reached PostgreSQL (whose text cannot hold NUL) from the forwarding middleware before any route
or key check ran: a 500 and a traceback for anyone, without a key. This middleware answers such
a request 400 in the API's error format before routing, forwarding, authentication or any
database lookup, and logs nothing (a client's mistake is not ours).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from wahttp.server.errors import send_error

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")
MESSAGE = "the URL contains a control character (NUL, newline, ...); none is valid here"


def has_control_characters(scope: Scope) -> bool:
    """Whether the request's path (decoded) or query string (raw or decoded) holds one."""
    if _CONTROL.search(scope.get("path", "")):
        return True
    raw_path = scope.get("raw_path")
    if raw_path and _CONTROL_BYTES.search(unquote_to_bytes(raw_path)):
        return True
    query: bytes = scope.get("query_string", b"")
    return bool(query and _CONTROL_BYTES.search(unquote_to_bytes(query.replace(b"+", b" "))))


class RejectControlCharacters:
    """ASGI middleware: 400 `invalid_request` for a URL with a control character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_control_characters(scope):
            await self.app(scope, receive, send)
            return
        await send_error(send, 400, "invalid_request", MESSAGE)
