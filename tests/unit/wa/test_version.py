"""The web client version: parsing, WAHTTP_WA_VERSION=auto (fetched from a loopback server
here, never the internet) and its fallback, and what a 405 tells the operator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wahttp.wa.client import ClientConfig
from wahttp.wa.client import version as v


def test_parse_version() -> None:
    assert v.parse_version("2.3000.1043857760") == (2, 3000, 1043857760)
    for bad in ("2.3000", "2.3000.x", "auto", "", "2.3000.1.4", "-2.1.1"):
        with pytest.raises(ValueError, match="WAHTTP_WA_VERSION"):
            v.parse_version(bad)


def test_revision_in_sw_js() -> None:
    # sw.js carries the revision inside JSON inside JavaScript: escaped quotes or not.
    page = b'self.x={\\"client_revision\\":1045649367,\\"other\\":1}'
    assert v.parse_revision(page) == (2, 3000, 1045649367)
    assert v.parse_revision(b'{"client_revision": 1000000001}') == (2, 3000, 1000000001)
    assert v.parse_revision(b"no revision here") is None


def test_config_reads_auto_and_reject_calls() -> None:
    cfg = ClientConfig.from_env({"WAHTTP_WA_VERSION": "auto", "WAHTTP_REJECT_CALLS": "true"})
    assert cfg.version_auto and cfg.version == v.PINNED_VERSION and cfg.reject_calls
    cfg = ClientConfig.from_env({"WAHTTP_WA_VERSION": "2.3000.5"})
    assert not cfg.version_auto and cfg.version == (2, 3000, 5) and not cfg.reject_calls


def test_outdated_reason_names_the_setting() -> None:
    text = v.outdated_reason((2, 3000, 1), auto=False)
    assert text == (
        "client version outdated: set WAHTTP_WA_VERSION (currently 2.3000.1) "
        "or WAHTTP_WA_VERSION=auto"
    )
    assert "currently auto (2.3000.1)" in v.outdated_reason((2, 3000, 1), auto=True)


@pytest.fixture
async def page_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback HTTP server answering every GET with pages[0] (status 200) or 503 if empty."""
    pages: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if pages:
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(pages[0])}\r\n\r\n".encode()
            writer.write(head + pages[0])
        else:
            writer.write(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    v.forget_cache()
    try:
        yield f"http://127.0.0.1:{port}/sw.js", pages
    finally:
        v.forget_cache()
        server.close()
        await server.wait_closed()


async def test_auto_fetches_the_current_version(page_server: tuple[str, list[bytes]]) -> None:
    url, pages = page_server
    pages.append(b'/* sw */ {\\"client_revision\\":1099999999}')
    assert await v.resolve(url, (2, 3000, 7)) == (2, 3000, 1099999999)
    pages[0] = b'{\\"client_revision\\":1}'
    assert await v.resolve(url, (2, 3000, 7)) == (2, 3000, 1099999999)  # cached


async def test_auto_falls_back_to_the_pinned_version(
    page_server: tuple[str, list[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    url, pages = page_server
    assert await v.resolve(url, (2, 3000, 7)) == (2, 3000, 7)  # 503
    assert "could not fetch the current version" in caplog.text
    v.forget_cache()
    pages.append(b"<html>no revision</html>")
    assert await v.resolve(url, (2, 3000, 8)) == (2, 3000, 8)
    v.forget_cache()
    assert await v.resolve("http://127.0.0.1:1/sw.js", (2, 3000, 9)) == (2, 3000, 9)


def test_service_settings_check_the_version() -> None:
    from pydantic import ValidationError

    from wahttp.server.settings import Settings

    with pytest.raises(ValidationError, match="WAHTTP_WA_VERSION"):
        Settings(_env_file=None, WAHTTP_WA_VERSION="2.3000")
    cfg = Settings(
        _env_file=None, WAHTTP_WA_VERSION="auto", WAHTTP_REJECT_CALLS="true"
    ).client_config()
    assert cfg.version_auto and cfg.reject_calls
