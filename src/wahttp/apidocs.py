"""The OpenAPI documentation pages (`/docs`, `/redoc`), with every script served by this process.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN without integrity checks: a
compromised CDN would run its code on the API's origin, where operators type their keys. Here the
assets come from the pinned PyPI package `fastapi-offline` (the Swagger UI bundle and CSS, ReDoc's
standalone bundle, the favicon: nothing of ours is vendored) and are served under
`/docs/static/`, so the docs also work offline. Each page carries a strict Content-Security-Policy:
scripts only from this origin plus the page's own inline script (by its SHA-256), no framing, no
other origins at all. Used by the REST service and by the simulator's admin API alike.

`install(app)` needs an app made with `docs_url=None, redoc_url=None` (no CDN pages); it sets
`app.docs_url` and `app.redoc_url` afterwards, so code that looks for the docs' paths finds them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ASSETS_PATH = "/docs/static"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
# Browsers revalidate the assets (ETag, Last-Modified): a package upgrade shows at once.
ASSETS_CACHE_CONTROL = "no-cache"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def assets_dir() -> Path:
    """Where the pinned fastapi-offline package keeps the Swagger UI and ReDoc files."""
    return Path(str(files("fastapi_offline") / "static"))


def content_security_policy(html: str) -> str:
    """A policy for one page: same-origin everything, its inline scripts allowed by hash only.

    Swagger UI and ReDoc set inline styles (hence 'unsafe-inline' for styles only) and draw
    icons from data: URLs; ReDoc runs its search in a blob: worker. No eval: both pages render
    the whole API in Chromium under this policy with no violation but ReDoc's footer logo (an
    image from its CDN, blocked). "Try it out" calls the API on this origin (connect-src 'self').
    """
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' {hashes}".rstrip(),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def _page(response: HTMLResponse) -> HTMLResponse:
    html = bytes(response.body).decode()
    policy = content_security_policy(html)
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


class _Assets:
    """The static files, with a Cache-Control of their own (nothing in them is secret)."""

    def __init__(self) -> None:
        self.files: ASGIApp = StaticFiles(directory=assets_dir())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"cache-control"]
                headers.append((b"cache-control", ASSETS_CACHE_CONTROL.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.files(scope, receive, send_cached)


def install(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve /docs, /docs/oauth2-redirect, /redoc and their assets from this process."""
    if app.docs_url or app.redoc_url:
        raise ValueError("make the app with docs_url=None, redoc_url=None: its pages use a CDN")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"
    app.mount(ASSETS_PATH, _Assets(), name="docs-static")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=redirect_url,
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return _page(get_swagger_ui_oauth2_redirect_html())

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(redirect_url, oauth2_redirect, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
    app.docs_url = docs_url
    app.redoc_url = redoc_url
    app.swagger_ui_oauth2_redirect_url = redirect_url
