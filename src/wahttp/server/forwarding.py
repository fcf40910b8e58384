"""Any worker answers for any session: requests for a session another worker runs go to it.

An ASGI middleware looks at `/sessions/{id}/...`: when the session runs here, or nobody live runs
it (this worker may then claim it), the request goes on to the routes. When another live worker
owns it, the request is sent on unchanged (method, path, query, headers with the API key, body) to
that worker's advertised URL (WAHTTP_WORKER_URL), and its answer is relayed. A forwarded request
carries `X-Wahttp-Forwarded-By` and is never forwarded again, so ownership moving meanwhile cannot
make a loop: the receiving worker then answers itself (claims the session or says 409/503).

The request goes on exactly as it came: its raw path and query (never rebuilt from the decoded
path, where `%2F..%2F` would become `/../` and a URL library would resolve it to another route
on the owner). A path whose decoded form has `.` or `..` segments, or whose session segment is
not a session id, is not forwarded at all: this worker answers it (404: no route has such a
path). The key was checked before any of this (`auth.KeyGate`, outside this middleware); a
session key is forwarded only for its own session, any other gets its 403 here.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from wahttp.server.auth import PRINCIPAL_SCOPE_KEY, Principal
from wahttp.server.errors import error_body, send_error
from wahttp.server.schemas import SESSION_ID_PATTERN

log = logging.getLogger(__name__)

SESSION_PATH = re.compile(r"^/sessions/([^/]+)(?:/.*)?$")
_SESSION_ID = re.compile(SESSION_ID_PATTERN)
FORWARDED_BY = "x-wahttp-forwarded-by"
# Connection-level headers are the proxy's own business, never passed on.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)

# Given a session id: the owner's base URL and worker id when another worker runs it, else None.
Locate = Callable[[str], Awaitable[tuple[str, str] | None]]


class Forwarder:
    """The running service's side: where a session runs, and a client to send requests on."""

    def __init__(self, locate: Locate, worker_id: Callable[[], str]) -> None:
        self.locate = locate
        self.worker_id = worker_id
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0))

    async def aclose(self) -> None:
        await self.http.aclose()


class ForwardToOwner:
    """The middleware; it finds the Forwarder on `app.state.forwarder` once the service runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = forwardable_session(scope) if scope["type"] == "http" else None
        forwarder = _forwarder(scope) if session_id else None
        if session_id is None or forwarder is None or _header(scope, FORWARDED_BY) is not None:
            await self.app(scope, receive, send)
            return
        target = await forwarder.locate(session_id)
        if target is None:
            await self.app(scope, receive, send)
            return
        who = scope.get(PRINCIPAL_SCOPE_KEY)
        if isinstance(who, Principal) and not who.admin and who.session_id != session_id:
            await send_error(send, 403, "forbidden", "this key belongs to another session")
            return
        await self._forward(forwarder, scope, receive, send, target=target)

    async def _forward(
        self,
        forwarder: Forwarder,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        target: tuple[str, str],
    ) -> None:
        base_url, worker = target
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        ]
        headers.append((FORWARDED_BY, forwarder.worker_id()))
        try:
            resp = await forwarder.http.request(
                scope["method"],
                _target_url(base_url, scope),
                headers=headers,
                content=bytes(body),
            )
        except httpx.HTTPError as exc:
            log.warning("worker %s does not answer for %s: %s", worker, scope["path"], exc)
            await _send_json(
                send,
                503,
                error_body(
                    "owner_unreachable",
                    "the worker running this session does not answer; retry shortly",
                ),
                [(b"retry-after", b"2")],
            )
            return
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in resp.headers.multi_items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-encoding"
        ]
        out.append((b"content-length", str(len(resp.content)).encode()))
        await send({"type": "http.response.start", "status": resp.status_code, "headers": out})
        await send({"type": "http.response.body", "body": resp.content})


def forwardable_session(scope: Scope) -> str | None:
    """The session a `/sessions/{id}/...` request is for, if it may be forwarded as it is."""
    path = str(scope["path"])
    match = SESSION_PATH.match(path)
    if match is None or not _SESSION_ID.match(match.group(1)):
        return None
    if any(segment in (".", "..") for segment in path.split("/")):
        return None  # `%2F..%2F` decoded, or plain dot segments: never sent on
    return match.group(1)


def _target_url(base_url: str, scope: Scope) -> httpx.URL:
    """The owner's URL for this request: its raw path and query, byte for byte."""
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode("ascii")  # uvicorn sets it
    query = scope.get("query_string", b"")
    return httpx.URL(base_url).copy_with(raw_path=raw_path + (b"?" + query if query else b""))


def _forwarder(scope: Scope) -> Forwarder | None:
    app = scope.get("app")
    forwarder = getattr(getattr(app, "state", None), "forwarder", None)
    return forwarder if isinstance(forwarder, Forwarder) else None


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return str(value.decode("latin-1"))
    return None


async def _send_json(
    send: Send, status: int, body: object, extra: list[tuple[bytes, bytes]]
) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": data})
