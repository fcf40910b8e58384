"""The docs pages and their assets come from the service itself; headers every answer carries;
no trailing-slash redirects (the app alone, no database: none of this needs the lifespan)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from wahttp import apidocs
from wahttp.server.app import create_app
from wahttp.server.settings import Settings
from wahttp.sim.admin import create_admin_app
from wahttp.sim.server import SimServer

ORIGIN = "http://wahttp.test"
CONTENT_TYPES = {
    "swagger-ui-bundle.js": ("text/javascript", "application/javascript"),
    "redoc.standalone.js": ("text/javascript", "application/javascript"),
    "swagger-ui.css": ("text/css",),
    "favicon.png": ("image/png",),
}


def service_app() -> FastAPI:
    return create_app(Settings(_env_file=None))


async def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN)


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with await client_of(service_app()) as client:
        yield client


def referenced_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html) + re.findall(
        r"""(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""", html
    )


async def check_docs(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        resp = await client.get(page)
        assert resp.status_code == 200, resp.text
        urls = referenced_urls(resp.text)
        assert urls, resp.text
        for url in urls:
            # Same origin only: a path on this server, never another host (no CDN).
            assert url.startswith("/") and not url.startswith("//"), (page, url)
        assert "cdn" not in resp.text.lower() and "fonts.googleapis" not in resp.text
        assets = [url for url in urls if url.startswith(apidocs.ASSETS_PATH + "/")]
        assert assets, (page, urls)
        for url in assets:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            name = url.rsplit("/", 1)[1]
            assert asset.headers["content-type"].split(";")[0] in CONTENT_TYPES[name], url
            assert len(asset.content) > 1000
            assert asset.headers["cache-control"] == apidocs.ASSETS_CACHE_CONTROL
        csp = resp.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "http" not in script_src
        assert "'unsafe-eval'" not in script_src
        # Every inline script the page has is allowed by its hash, nothing else.
        inline = re.findall(r"<script>(.*?)</script>", resp.text, re.DOTALL)
        assert script_src.count("'sha256-") == len(inline), (page, csp)
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get(apidocs.ASSETS_PATH + "/nope.js")).status_code == 404


async def test_the_docs_use_only_same_origin_assets_served_here(api: httpx.AsyncClient) -> None:
    await check_docs(api)
    page = await api.get("/docs/oauth2-redirect")
    assert page.status_code == 200 and "content-security-policy" in page.headers


async def test_the_simulator_admin_docs_too() -> None:
    async with await client_of(create_admin_app(SimServer())) as client:
        await check_docs(client)


def test_every_asset_ships_in_the_pinned_package() -> None:
    for name in apidocs.ASSETS:
        assert (apidocs.assets_dir() / name).stat().st_size > 1000, name


async def test_answers_are_not_stored_by_caches(api: httpx.AsyncClient) -> None:
    for resp in (
        await api.get("/openapi.json"),
        await api.get("/docs"),
        await api.get("/no/such/path"),
        await api.post("/keys", json={"session": "alice"}),  # 500 here: no lifespan, no auth
    ):
        assert resp.headers["cache-control"] == "no-store", resp.request.url
        assert resp.headers["x-content-type-options"] == "nosniff"


async def test_a_trailing_slash_is_a_404_not_a_redirect_to_the_host_header(
    api: httpx.AsyncClient,
) -> None:
    for method in ("GET", "POST"):
        resp = await api.request(method, "/sessions/", headers={"Host": "evil.example"})
        assert resp.status_code == 404, resp.text
        assert "location" not in resp.headers
        assert resp.json()["error"]["code"] == "not_found"
