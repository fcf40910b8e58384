"""The media connection: which hosts serve (and take) media, and the upload auth token.

`<iq xmlns="w:m" type="set" to="s.whatsapp.net"><media_conn/></iq>` is answered with
`<media_conn auth ttl auth_ttl max_buckets><host hostname/>…</media_conn>` (Baileys'
refreshMediaConn, whatsmeow's queryMediaConn). The answer is kept per client until its ttl
(seconds) runs out; `current(force=True)` asks again (after every host failed, say). The auth
token is a credential: it is never logged and not shown by repr.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.errors import WAError
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

DEFAULT_TTL = 300  # seconds, should an answer carry none


@dataclass(frozen=True, slots=True)
class MediaHost:
    hostname: str  # a name, or name:port (the simulator)
    max_content_length: int | None = None


@dataclass(frozen=True, slots=True)
class MediaConn:
    auth: str = field(repr=False)
    ttl: int
    hosts: tuple[MediaHost, ...]
    fetched_at: float
    auth_ttl: int | None = None
    max_buckets: int | None = None

    def expired(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.fetched_at + self.ttl


def media_conn_iq() -> Node:
    return Node(
        "iq",
        {"to": S_WHATSAPP_NET, "xmlns": "w:m", "type": "set"},
        [Node("media_conn", {})],
    )


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _valid_hostname(name: str) -> bool:
    """A host name, or name:port; nothing that could change the URL's shape."""
    if not name or len(name) > 255:
        return False
    host, _, port = name.rpartition(":") if ":" in name else (name, "", "")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        return False
    return bool(host) and all(c.isalnum() or c in "-._" for c in host)


def parse_media_conn(result: Node, now: float | None = None) -> MediaConn:
    """The media_conn of an iq result; WAError when it has none or no usable host."""
    node = result.child("media_conn")
    if node is None:
        raise WAError("media_conn answer without a media_conn element")
    hosts = tuple(
        MediaHost(h.attr("hostname") or "", _int(h.attr("maxContentLengthBytes")))
        for h in node.children("host")
        if _valid_hostname(h.attr("hostname") or "")
    )
    if not hosts:
        raise WAError("media_conn answer without a usable host")
    return MediaConn(
        auth=node.attr("auth") or "",
        ttl=_int(node.attr("ttl")) or DEFAULT_TTL,
        hosts=hosts,
        fetched_at=time.monotonic() if now is None else now,
        auth_ttl=_int(node.attr("auth_ttl")),
        max_buckets=_int(node.attr("max_buckets")),
    )


class MediaConnCache:
    """One client's media connection, asked for once at a time and kept until its ttl."""

    def __init__(self) -> None:
        self._conn: MediaConn | None = None
        self._lock = asyncio.Lock()

    async def get(self, client: Client, force: bool = False) -> MediaConn:
        async with self._lock:
            if self._conn is None or force or self._conn.expired():
                self._conn = parse_media_conn(await client.query(media_conn_iq()))
            return self._conn

    def clear(self) -> None:
        self._conn = None


_caches: weakref.WeakKeyDictionary[Client, MediaConnCache] = weakref.WeakKeyDictionary()


async def current(client: Client, force: bool = False) -> MediaConn:
    """The client's media connection, fetched when it has none or it expired."""
    cache = _caches.get(client)
    if cache is None:
        cache = _caches[client] = MediaConnCache()
    return await cache.get(client, force)


def forget(client: Client) -> None:
    """Drop the cached answer (after every host failed): the next use asks the server again."""
    cache = _caches.get(client)
    if cache is not None:
        cache.clear()
