"""The web client version we announce: pinned, configured, or fetched (`WAHTTP_WA_VERSION=auto`).

A stale version gets `<failure reason="405">` at login (Baileys surfaces it as statusCode 405;
whatsmeow as ErrClientOutdated). `auto` reads the current `client_revision` from WhatsApp Web's
service worker (`https://web.whatsapp.com/sw.js`), as Baileys' `fetchLatestWaWebVersion` and
whatsmeow's `GetLatestVersion` do; the version is then `2.3000.<client_revision>`. When that
fails (offline, blocked, changed page) the pinned version is used, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import httpx

log = logging.getLogger(__name__)

Version = tuple[int, int, int]
# The web client version we announce unless told otherwise (Baileys 7.0.0-rc14 pins this one).
PINNED_VERSION: Version = (2, 3000, 1043857760)
AUTO = "auto"
LATEST_URL = "https://web.whatsapp.com/sw.js"
# The page is JavaScript with the revision inside a JSON string: "client_revision":123 or
# \"client_revision\":123 (Baileys' regular expression accepts both).
_REVISION = re.compile(rb'\\?"client_revision\\?":\s*(\d+)')
# Headers the page needs to be served to a script (Baileys sends these two).
_HEADERS = {
    "sec-fetch-site": "none",
    "user-agent": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    ),
}
# A fetched version is reused for this long by every client of the process.
CACHE_SECONDS = 6 * 3600.0
_MAX_PAGE = 4 * 1024 * 1024


def parse_version(text: str) -> Version:
    """ "2.3000.1043857760" -> (2, 3000, 1043857760); ValueError for anything else."""
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 12 for p in parts):
        raise ValueError("WAHTTP_WA_VERSION must be auto or look like 2.3000.1043857760")
    return int(parts[0]), int(parts[1]), int(parts[2])


def format_version(version: Version) -> str:
    return ".".join(map(str, version))


def parse_revision(page: bytes) -> Version | None:
    """The version in WhatsApp Web's sw.js, or None when the page does not name one."""
    match = _REVISION.search(page)
    return (2, 3000, int(match.group(1))) if match else None


def outdated_reason(version: Version, auto: bool) -> str:
    """What a 405 tells the operator: which setting to change."""
    current = AUTO + f" ({format_version(version)})" if auto else format_version(version)
    return (
        f"client version outdated: set WAHTTP_WA_VERSION (currently {current}) "
        "or WAHTTP_WA_VERSION=auto"
    )


_cache: dict[str, tuple[float, Version]] = {}
_lock = asyncio.Lock()


async def fetch_latest(url: str = LATEST_URL, timeout: float = 5.0) -> Version:
    """Read the current version from `url`; raises ValueError or httpx.HTTPError on failure."""
    async with (
        httpx.AsyncClient(timeout=timeout, follow_redirects=True, headers=_HEADERS) as http,
        http.stream("GET", url) as resp,
    ):
        resp.raise_for_status()
        page = b""
        async for chunk in resp.aiter_bytes():
            page += chunk
            if len(page) > _MAX_PAGE:
                break
    version = parse_revision(page)
    if version is None:
        raise ValueError("no client_revision in the page")
    return version


async def resolve(url: str = LATEST_URL, fallback: Version = PINNED_VERSION) -> Version:
    """The current version (fetched once per CACHE_SECONDS per URL), else `fallback`."""
    async with _lock:
        cached = _cache.get(url)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            version = await fetch_latest(url)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning(
                "WAHTTP_WA_VERSION=auto: could not fetch the current version (%s); using %s",
                type(exc).__name__,
                format_version(fallback),
            )
            # Try again on the next connect, not at once in a loop: keep the fallback a minute.
            _cache[url] = (now - CACHE_SECONDS + 60.0, fallback)
            return fallback
        log.info("WAHTTP_WA_VERSION=auto: WhatsApp Web is at %s", format_version(version))
        _cache[url] = (now, version)
        return version


def forget_cache() -> None:
    _cache.clear()
