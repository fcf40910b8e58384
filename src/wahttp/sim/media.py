"""The simulator's media host: encrypted blobs served over HTTP by their direct path.

Like WhatsApp's mmg hosts, it serves an encrypted file at its direct path
(`/v/t62.15575-24/<id>.enc?ccb=11-4&oh=…&oe=…`; the query is ignored on GET, as real
clients add their own) and answers 404 for anything it does not hold. It is served by the
admin API's uvicorn (routes installed by `install`), so the host clients get in the
`media_conn` answer is the admin API's `host:port`, over http (the chat socket is ws:// on
loopback; clients derive the scheme from it). Uploads (issue 16) go here too:
`POST /mms/<type>/<fileEncSha256, base64url>?auth=<token>` will check `auth` against
`MediaStore.auth` and store the body under a new direct path.

Faults: `fail_next(status, count)` makes the next GETs answer that status (404 or 5xx), so
tests can check that a failed download loses nothing and is retried.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response

from wahttp.wa.binary import Node
from wahttp.wa.media import encrypt_media
from wahttp.wa.proto import appstate_pb2 as pb

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.server import SimServer

log = logging.getLogger(__name__)

MEDIA_CONN_TTL = 300  # seconds, as the real server's answers (ttl="300"-ish)
AUTH_TTL = 21600
MAX_BLOBS = 10_000  # oldest dropped first: a long-running sandbox does not grow without end
# The direct-path prefix the real server uses per type (app-state blobs: t62.15575-24).
_PREFIX = {"md-app-state": "/v/t62.15575-24", "md-msg-hist": "/v/t62.36145-24"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class MediaStore:
    """Blobs by direct path (without its query), the host clients reach, and GET faults."""

    host: str = ""  # host:port of the HTTP server serving the routes (set by the runner)
    auth: str = field(default_factory=lambda: _b64url(secrets.token_bytes(24)), repr=False)
    ttl: int = MEDIA_CONN_TTL
    blobs: dict[str, bytes] = field(default_factory=dict, repr=False)
    failures: list[int] = field(default_factory=list)  # statuses the next GETs answer
    served: int = 0
    refused: int = 0

    def put(self, data: bytes, media_type: str) -> str:
        """Store an encrypted file; returns its direct path (with a query like the real one)."""
        prefix = _PREFIX.get(media_type, "/v/t62.7118-24")
        path = f"{prefix}/{secrets.token_hex(16)}.enc"
        self.blobs[path] = data
        while len(self.blobs) > MAX_BLOBS:
            del self.blobs[next(iter(self.blobs))]
        oe = format(int(time.time()) + 30 * 86400, "X")
        return f"{path}?ccb=11-4&oh=01_{_b64url(secrets.token_bytes(12))}&oe={oe}&_nc_sid=5e03e0"

    def get(self, path: str) -> bytes | None:
        return self.blobs.get(path.split("?", 1)[0])

    def fail_next(self, status: int, count: int = 1) -> None:
        self.failures.extend([status] * count)

    def upload_blob(self, plain: bytes, media_type: str) -> pb.ExternalBlobReference:
        """Encrypt and store plain bytes: the reference a sync answer carries."""
        enc = encrypt_media(plain, media_type)
        ref = pb.ExternalBlobReference(
            mediaKey=enc.media_key,
            directPath=self.put(enc.data, media_type),
            fileSizeBytes=enc.file_length,
            fileSha256=enc.file_sha256,
            fileEncSha256=enc.file_enc_sha256,
        )
        return ref

    def media_conn(self) -> Node:
        return Node(
            "media_conn",
            {
                "auth": self.auth,
                "ttl": str(self.ttl),
                "auth_ttl": str(AUTH_TTL),
                "max_buckets": "12",
            },
            [Node("host", {"hostname": self.host, "maxContentLengthBytes": "104857600"})],
        )


async def on_media_conn_iq(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    from wahttp.sim.iq import result

    return result(node, [server.media.media_conn()])


def install(app: FastAPI, store: MediaStore) -> None:
    """The media host's routes, on the admin API's app (hidden from its docs)."""

    @app.get("/v/{path:path}", include_in_schema=False)
    async def media_get(path: str, request: Request) -> Response:
        if store.failures:
            status = store.failures.pop(0)
            store.refused += 1
            return Response(status_code=status)
        data = store.get(request.url.path)
        if data is None:
            return Response(status_code=404)
        store.served += 1
        return Response(data, media_type="application/octet-stream")
