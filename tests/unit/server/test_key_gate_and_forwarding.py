"""The key is checked before a body is read and before a request is forwarded; forwarding sends
the raw path (the app with a stand-in key checker and a mock owner worker: no database)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from wahttp.server.app import create_app
from wahttp.server.auth import ADMIN, ApiAuth, Principal
from wahttp.server.forwarding import FORWARDED_BY, Forwarder
from wahttp.server.settings import Settings

ADMIN_KEY = "admin-key-" + "x" * 30
BOB_KEY = "wak_" + "B" * 43  # a session key of session "bob"
OWNER = "http://owner.test"


class StandInAuth(ApiAuth):
    """The admin key in memory, and bob's session key without a database."""

    def __init__(self) -> None:
        super().__init__(None, ADMIN_KEY)
        self.lookups = 0

    async def identify(self, key: str) -> Principal | None:
        self.lookups += 1
        if self.is_admin(key):
            return ADMIN
        return Principal(False, "bob", uuid.uuid4()) if key == BOB_KEY else None


class Owner:
    """The worker that runs every session: records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return httpx.Response(200, json={"owner": True, "raw": request.url.raw_path.decode()})


@pytest.fixture
def owner() -> Owner:
    return Owner()


@pytest.fixture
def app(owner: Owner) -> FastAPI:
    app = create_app(Settings(_env_file=None))
    app.state.auth = StandInAuth()

    async def locate(session_id: str) -> tuple[str, str] | None:
        return OWNER, "owner-worker"

    forwarder = Forwarder(locate, lambda: "this-worker")
    forwarder.http = httpx.AsyncClient(transport=httpx.MockTransport(owner.handle))
    app.state.forwarder = forwarder
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker.test") as http:
        yield http


async def test_the_raw_path_is_forwarded_never_a_rebuilt_one(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = {"X-Api-Key": ADMIN_KEY}
    # `%2F..%2F` decodes to `/../`: it must never become /keys on the owner.
    resp = await client.get("/sessions/alice%2F..%2F..%2Fkeys", headers=admin)
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "not_found"
    assert owner.seen == []
    # Other encoded characters go on byte for byte, query string too.
    resp = await client.get("/sessions/alice/messages/a%2Fb%20c?x=%2F&y=1", headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["raw"] == "/sessions/alice/messages/a%2Fb%20c?x=%2F&y=1"
    (seen,) = owner.seen
    assert str(seen.url).startswith(OWNER + "/sessions/alice/")
    assert seen.headers["x-api-key"] == ADMIN_KEY
    assert seen.headers[FORWARDED_BY] == "this-worker"


async def test_the_key_is_checked_before_forwarding(
    client: httpx.AsyncClient, app: FastAPI, owner: Owner
) -> None:
    resp = await client.get("/sessions/alice/status")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_api_key"
    assert resp.headers["www-authenticate"] == "Bearer"
    resp = await client.get("/sessions/alice/status", headers={"X-Api-Key": "wak_" + "Z" * 43})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    # bob's key is not forwarded for alice's session, and is for bob's.
    bob = {"Authorization": f"Bearer {BOB_KEY}"}
    resp = await client.get("/sessions/alice/status", headers=bob)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
    assert owner.seen == []
    resp = await client.get("/sessions/bob/status", headers=bob)
    assert resp.status_code == 200 and resp.json()["owner"] is True
    assert len(owner.seen) == 1


async def call_unread(
    app: FastAPI, headers: list[tuple[bytes, bytes]]
) -> tuple[int, list[Message]]:
    """POST /sessions with a large body: (chunks of the body pulled, what was sent)."""
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"{}" * 1000, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/sessions",
        "raw_path": b"/sessions",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"99999"),
            *headers,
        ],
    }
    await app(scope, receive, send)
    return pulled, sent


async def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(
    app: FastAPI,
) -> None:
    auth: StandInAuth = app.state.auth
    for headers, code in (
        ([], "missing_api_key"),
        ([(b"x-api-key", b"not-a-key-at-all")], "invalid_api_key"),
        ([(b"authorization", b"Bearer " + b"y" * 600)], "invalid_api_key"),
    ):
        pulled, sent = await call_unread(app, headers)
        assert pulled == 0, headers  # not one chunk of the body read
        assert sent[0]["status"] == 401
        sent_headers = dict(sent[0]["headers"])
        assert sent_headers[b"connection"] == b"close"  # uvicorn closes instead of reading on
        assert sent_headers[b"cache-control"] == b"no-store"
        assert json.loads(sent[1]["body"])["error"]["code"] == code
    assert auth.lookups == 0  # none of those keys needed a database look-up
