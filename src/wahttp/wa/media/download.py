"""Download an encrypted file from the media hosts and decrypt it (wahttp.wa.media.crypto).

Real clients fetch `https://<host><directPath>` for each host of the media connection in turn
(whatsmeow); Baileys uses `https://mmg.whatsapp.net<directPath>` when it has no URL. The
scheme follows the chat socket's: `wss://` -> https, `ws://` (the simulator on loopback) ->
http. Redirects are not followed, proxies from the environment are not used, the body is read
up to a size limit, and every request has a timeout. A host that fails (network error, an HTTP
status other than 200, a body over the limit or not matching fileEncSha256) makes us try the
next; a file that matches its hash but not its MAC or plain hash is refused at once (the
reference is wrong, no other host can mend it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from wahttp.wa.media.crypto import MAC_SIZE, MediaError, decrypt_media

log = logging.getLogger(__name__)

DEFAULT_HOST = "mmg.whatsapp.net"
ORIGIN = "https://web.whatsapp.com"
MAX_SIZE = 64 * 1024 * 1024
TIMEOUT = 30.0
# Failures another host may not have; the rest are refused at once.
_NEXT_HOST = {"download", "size", "enc-sha256"}


def media_scheme(chat_url: str) -> str:
    """http for a ws:// chat socket (the sandbox), https otherwise."""
    return "http" if chat_url.lower().startswith("ws://") else "https"


def media_urls(direct_path: str, hosts: Sequence[str], scheme: str = "https") -> list[str]:
    """The URLs to try, in order. `direct_path` must be a path (it comes from the server)."""
    if not direct_path.startswith("/") or direct_path.startswith("//"):
        raise MediaError("download", "direct path is not a path")
    return [f"{scheme}://{host}{direct_path}" for host in (hosts or [DEFAULT_HOST])]


async def fetch(
    http: httpx.AsyncClient, url: str, max_size: int = MAX_SIZE, timeout: float = TIMEOUT
) -> bytes:
    """GET one URL: its body when 200 and at most `max_size` bytes, else MediaError."""
    try:
        async with http.stream(
            "GET", url, headers={"Origin": ORIGIN, "Referer": ORIGIN + "/"}, timeout=timeout
        ) as resp:
            if resp.status_code != 200:
                raise MediaError("download", f"HTTP {resp.status_code}")
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_size:
                raise MediaError("size", f"{declared} bytes")
            chunks: list[bytes] = []
            total = 0
            async for chunk in resp.aiter_bytes():
                total += len(chunk)
                if total > max_size:
                    raise MediaError("size", f"over {max_size} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise MediaError("download", type(exc).__name__) from exc


async def download_media(
    direct_path: str,
    hosts: Sequence[str],
    media_key: bytes,
    media_type: str,
    *,
    scheme: str = "https",
    file_enc_sha256: bytes | None = None,
    file_sha256: bytes | None = None,
    file_size: int | None = None,
    max_size: int = MAX_SIZE,
    timeout: float = TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bytes:
    """Fetch the encrypted file from the first host that has it and return its plain bytes."""
    limit = max_size
    if file_size is not None and file_size >= 0:
        # CBC pads to the next block, the MAC follows: a larger body is not this file.
        limit = min(limit, file_size + 16 + MAC_SIZE)
    last: MediaError | None = None
    async with httpx.AsyncClient(
        transport=transport, follow_redirects=False, trust_env=False, timeout=timeout
    ) as http:
        for url in media_urls(direct_path, hosts, scheme):
            host = urlsplit(url).netloc
            try:
                data = await fetch(http, url, limit, timeout)
                return decrypt_media(
                    data,
                    media_key,
                    media_type,
                    file_enc_sha256=file_enc_sha256,
                    file_sha256=file_sha256,
                )
            except MediaError as exc:
                if exc.reason not in _NEXT_HOST:
                    raise
                log.info("media download from %s failed: %s", host, exc)
                last = exc
    assert last is not None
    raise last
