"""HTTP errors in one place: each failure answers {"error": {"code", "message"}} and a status."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from wahttp.server.db import UNAVAILABLE_ERRORS, describe

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # more fields on some errors: details, state

    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


# The body every route may answer with, for the OpenAPI schema: 4XX for bad input (400, never
# FastAPI's 422, which "4XX" replaces), a missing or unknown key, an unknown session or a
# conflict; 5XX for our own or WhatsApp's failures.
OPENAPI_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "bad request, key, session or state"},
    "5XX": {"model": ErrorResponse, "description": "our failure or WhatsApp's"},
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra


def not_found(session_id: str) -> ApiError:
    return ApiError(404, "session_not_found", f"no session with id {session_id!r}")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        details.append({"field": loc, "problem": err.get("msg", "invalid")})
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return "the request body is not valid JSON", details
    first = details[0] if details else {"field": "", "problem": "invalid request"}
    where = f"{first['field']}: " if first["field"] else ""
    return f"{where}{first['problem']}", details


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        body = error_body(exc.code, exc.message, **exc.extra)
        return JSONResponse(body, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_message(exc)
        return JSONResponse(error_body("invalid_request", message, details=details), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(asyncpg.DataError)
    async def unstorable(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        # Last resort: a value PostgreSQL refuses (NUL in text, a number out of range, an
        # untranslatable character) came from the request, since validation should have
        # stopped it. One line naming the error class, never the value, and no traceback.
        log.warning(
            "%s %s: the database refused a value (%s); answered 400",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return JSONResponse(
            error_body("invalid_request", "a value in the request cannot be stored"), 400
        )

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL is down or restarting: a 503 to retry, not a crash (and no trace logged).
        log.warning(
            "%s %s: the database is unavailable (%s)",
            request.method,
            request.url.path,
            describe(exc),
        )
        body = error_body("database_unavailable", "the database is unavailable; retry shortly")
        return JSONResponse(body, 503, headers={"Retry-After": "2"})

    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, database_unavailable)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error"), 500)


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    **extra: Any,
) -> None:
    """Answer in the API's error format from an ASGI middleware (before or instead of the app)."""
    data = json.dumps(error_body(code, message, **extra), separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
