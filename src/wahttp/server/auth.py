"""API keys: who may call the REST API, and on which sessions.

A key is sent as `X-Api-Key: <key>` or `Authorization: Bearer <key>` (X-Api-Key wins when
both are there). Two kinds:

- the admin key: `WAHTTP_API_KEY`, or, when that is unset, a random key generated on the first
  start into `<WAHTTP_DATA_DIR>/admin-api-key` (mode 0600; only the path is logged). It may
  do everything.
- session keys, made with `POST /keys`: each reaches one session's own endpoints
  (`/sessions/{id}/...`: status, qr, pair-request, send-message, messages, read, webhook),
  never creating, listing or deleting sessions, nor managing keys.

Session keys are `wak_` + `secrets.token_urlsafe(32)` (256 random bits). The database keeps the
SHA-256 digest of each key (a plain hash suffices for keys this random) and its first 12
characters, the `prefix`: not secret, it finds the row and names the key in lists. Digests are
compared with `hmac.compare_digest`, the admin key's too. Keys are never logged.

A missing or unknown key is a 401 with `WWW-Authenticate: Bearer`; a valid key used outside
its reach a 403. `WAHTTP_AUTH=off` turns authentication off (the Node.js original had none).

Every route needs a key except `/health` and the OpenAPI documentation (`/docs`, `/redoc`,
`/openapi.json`), which describe the API and hold nothing secret; `check_routes` refuses an
app with any other route that does not depend on `authenticated`, so a new route cannot be
left open by mistake.

`KeyGate`, an ASGI middleware in front of the body limit's reader and of forwarding, checks the
key before anything else happens: a request without a key, or with one that is neither the admin
key nor a known session key, gets its 401 (with `Connection: close`) before a byte of its body is
read and before it could be forwarded to another worker. The caller it found travels on in the
ASGI scope, so `authenticated` does not look the key up twice.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated
from uuid import UUID, uuid4

import asyncpg
from fastapi import Depends, FastAPI, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from wahttp import apidocs
from wahttp.server.db import Database
from wahttp.server.errors import ApiError, send_error
from wahttp.server.settings import Settings

log = logging.getLogger(__name__)

KEY_TAG = "wak_"
PREFIX_LENGTH = 12
MAX_KEY_LENGTH = 512
ADMIN_KEY_FILE = "admin-api-key"
MIN_ADMIN_KEY_LENGTH = 24
PUBLIC_PATHS = frozenset({"/health"})
# What new_key() makes: the only session keys there are, so nothing else needs a database look-up.
SESSION_KEY_SHAPE = re.compile(r"^wak_[A-Za-z0-9_-]{43}$")
# Where KeyGate leaves the caller it identified, for `authenticated`.
PRINCIPAL_SCOPE_KEY = "wahttp.principal"


def new_key() -> str:
    """A new session key: `wak_` and 43 URL-safe characters (256 random bits)."""
    return KEY_TAG + secrets.token_urlsafe(32)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


# -- session keys in the database ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """A stored session key, without its secret."""

    id: UUID
    session_id: str
    name: str | None
    prefix: str
    created_at: datetime


_COLUMNS = "id, session_id, name, prefix, created_at"


def _row(record: asyncpg.Record) -> ApiKeyRow:
    return ApiKeyRow(
        id=record["id"],
        session_id=record["session_id"],
        name=record["name"],
        prefix=record["prefix"],
        created_at=record["created_at"],
    )


class ApiKeyRepository:
    """The `api_keys` table (migration 006): digests and prefixes, never the keys."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, session_id: str, name: str | None = None
    ) -> tuple[ApiKeyRow, str] | None:
        """A new key for the session: (its row, the key itself); None if there is no session."""
        key = new_key()
        try:
            async with self._db.acquire() as conn:
                record = await conn.fetchrow(
                    "INSERT INTO api_keys (id, session_id, name, prefix, key_hash)"
                    f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
                    uuid4(),
                    session_id,
                    name,
                    key[:PREFIX_LENGTH],
                    key_digest(key),
                )
        except asyncpg.ForeignKeyViolationError:
            return None
        return _row(record), key

    async def list(self, session_id: str | None = None) -> list[ApiKeyRow]:
        """Every key (or one session's), oldest first."""
        async with self._db.acquire() as conn:
            records = await conn.fetch(
                f"SELECT {_COLUMNS} FROM api_keys WHERE $1::text IS NULL OR session_id = $1"
                " ORDER BY created_at, id",
                session_id,
            )
        return [_row(r) for r in records]

    async def revoke(self, key_id: UUID) -> bool:
        """Delete the key; False if there was none. It stops working at once."""
        async with self._db.acquire() as conn:
            status: str = await conn.execute("DELETE FROM api_keys WHERE id = $1", key_id)
        return status != "DELETE 0"

    async def find(self, key: str) -> ApiKeyRow | None:
        """The row of this key, if it is one of ours (looked up by prefix, digest compared)."""
        if not key.startswith(KEY_TAG) or len(key) > MAX_KEY_LENGTH:
            return None
        wanted = key_digest(key)
        async with self._db.acquire() as conn:
            records = await conn.fetch(
                f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE prefix = $1",
                key[:PREFIX_LENGTH],
            )
        found: ApiKeyRow | None = None
        for record in records:
            if hmac.compare_digest(bytes(record["key_hash"]), wanted):
                found = _row(record)
        return found


# -- who is calling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the admin, or the holder of one session's key."""

    admin: bool
    session_id: str | None = None
    key_id: UUID | None = None


ADMIN = Principal(admin=True)


class ApiAuth:
    """Checks presented keys: the admin key's digest in memory, session keys in the database."""

    def __init__(
        self, keys: ApiKeyRepository | None, admin_key: str | None, *, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        self.keys = keys
        self._admin_digest = key_digest(admin_key) if admin_key else None

    def __repr__(self) -> str:
        return f"ApiAuth(enabled={self.enabled})"

    def is_admin_key(self, key: str | None) -> bool:
        """Whether this is the admin key (no database round trip); any caller when auth is off."""
        if not self.enabled:
            return True
        admin = self._admin_digest
        if not key or admin is None or len(key) > MAX_KEY_LENGTH:
            return False
        return hmac.compare_digest(key_digest(key.strip()), admin)

    async def identify(self, key: str) -> Principal | None:
        """Whose key this is; None for a key we do not know."""
        if len(key) > MAX_KEY_LENGTH:
            return None
        if self.is_admin(key):
            return ADMIN
        if self.keys is None or not SESSION_KEY_SHAPE.match(key):
            return None
        row = await self.keys.find(key)
        return None if row is None else Principal(False, row.session_id, row.id)

    def is_admin(self, key: str) -> bool:
        """The admin key? (in memory, constant time)"""
        admin = self._admin_digest
        return admin is not None and hmac.compare_digest(key_digest(key), admin)


def setup(settings: Settings, db: Database) -> ApiAuth:
    """The service's ApiAuth; makes the admin key file on a first start without WAHTTP_API_KEY."""
    keys = ApiKeyRepository(db)
    if settings.auth == "off":
        log.warning(
            "WAHTTP_AUTH=off: API AUTHENTICATION IS OFF. Anyone who can reach %s:%s controls "
            "every session. Use this only behind a private network or a proxy that checks access.",
            settings.host,
            settings.port,
        )
        return ApiAuth(keys, None, enabled=False)
    if settings.api_key is not None:
        return ApiAuth(keys, settings.api_key.get_secret_value())
    return ApiAuth(keys, admin_key_from_file(Path(settings.data_dir) / ADMIN_KEY_FILE))


def admin_key_from_file(path: Path) -> str:
    """The admin key kept in `path`, generated (0600) on first use; logs the path, never the key.

    The key is written to a temporary file and hard-linked into place, so a process that starts
    at the same moment either creates the file or reads the complete one the other created.
    """
    path = path.absolute()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        key = _read_key_file(path)
        log.info("admin API key: in %s", path)
        return key
    key = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key_file(path)  # another process made it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
    log.warning(
        "WAHTTP_API_KEY is not set: generated an admin API key into %s (mode 0600); "
        "send it as X-Api-Key or set WAHTTP_API_KEY to choose one",
        path,
    )
    return key


def _read_key_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & 0o077:
        path.chmod(0o600)
        log.warning("%s was readable by other users; it is 0600 now", path)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_ADMIN_KEY_LENGTH:
        raise RuntimeError(
            f"{path} does not hold a usable admin API key ({MIN_ADMIN_KEY_LENGTH}+ characters);"
            " delete it to generate a new one"
        )
    return key


# -- FastAPI dependencies ------------------------------------------------------------------------

_api_key_header = APIKeyHeader(
    name="X-Api-Key",
    scheme_name="ApiKey",
    description="the admin key or a session key",
    auto_error=False,
)
_bearer = HTTPBearer(
    scheme_name="Bearer", description="the same key as `Authorization: Bearer`", auto_error=False
)


def get_auth(request: Request) -> ApiAuth:
    """The app's ApiAuth (set by the lifespan); without one every request is refused."""
    auth = getattr(request.app.state, "auth", None)
    if not isinstance(auth, ApiAuth):
        raise ApiError(500, "auth_unavailable", "authentication is not set up on this server")
    return auth


def _unauthorized(code: str, message: str, challenge: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


async def authenticated(
    request: Request,
    auth: Annotated[ApiAuth, Depends(get_auth)],
    x_api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The caller, from X-Api-Key or a Bearer token: 401 without a key or with an unknown one."""
    if not auth.enabled:
        return ADMIN
    checked = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(checked, Principal):
        return checked  # KeyGate identified this very request's key
    key = x_api_key or (bearer.credentials if bearer is not None else None)
    if not key:
        raise _unauthorized(
            "missing_api_key",
            "an API key is required: send X-Api-Key: <key> or Authorization: Bearer <key>",
            "Bearer",
        )
    who = await auth.identify(key.strip())
    if who is None:
        raise _unauthorized(
            "invalid_api_key", "the API key is not valid", 'Bearer error="invalid_token"'
        )
    return who


PrincipalDep = Annotated[Principal, Depends(authenticated)]


async def require_admin(who: PrincipalDep) -> Principal:
    """Only the admin key: 403 for a session key."""
    if not who.admin:
        raise forbidden("this needs the admin key")
    return who


async def require_session_access(request: Request, who: PrincipalDep) -> Principal:
    """The admin, or a key of the session in the `session_id` path parameter.

    On a route without `session_id` (create or list sessions) only the admin may pass.
    """
    if who.admin:
        return who
    session_id = request.path_params.get("session_id")
    if session_id is None:
        raise forbidden("this needs the admin key")
    if session_id != who.session_id:
        raise forbidden("this key belongs to another session")
    return who


# -- every route protected -----------------------------------------------------------------------


def public_paths(app: FastAPI) -> frozenset[str]:
    """Paths open without a key: /health and the OpenAPI documentation."""
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    paths = PUBLIC_PATHS | {path for path in docs if path}
    if app.docs_url or app.redoc_url:
        paths |= {apidocs.ASSETS_PATH}  # their scripts and styles, served by apidocs
    return paths


def _uses(dependant: Dependant, call: object) -> bool:
    return any(dep.call is call or _uses(dep, call) for dep in dependant.dependencies)


def route_table(app: FastAPI) -> list[tuple[str, frozenset[str], bool]]:
    """Every route as (path, methods, needs a key), routes of included routers too."""
    table = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        protected = (
            isinstance(route.original_route, APIRoute)
            and isinstance(dependant, Dependant)
            and _uses(dependant, authenticated)
        )
        table.append((str(route.path), frozenset(route.methods or ()), protected))
    return table


def unprotected_routes(app: FastAPI) -> list[str]:
    """Routes outside `public_paths` that do not depend on `authenticated`."""
    public = public_paths(app)
    return [
        f"{','.join(sorted(methods))} {path}"
        for path, methods, protected in route_table(app)
        if not protected and path not in public
    ]


def check_routes(app: FastAPI) -> None:
    """Refuse to serve a route that forgot its key check (RuntimeError naming it)."""
    missing = unprotected_routes(app)
    if missing:
        raise RuntimeError(f"routes without authentication: {', '.join(missing)}")


# -- the key checked before the body is read -----------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def presented_key(scope: Scope) -> str | None:
    """The key as `authenticated` reads it: X-Api-Key, else `Authorization: Bearer <key>`."""
    x_api_key = _header(scope, b"x-api-key")
    if x_api_key:
        return x_api_key
    scheme, _, credentials = (_header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials
    return None


class KeyGate:
    """Refuses requests without a valid key (401, `Connection: close`) before reading a body.

    The admin key is checked in memory; a key shaped like a session key is looked up (once: the
    caller found goes on in the scope). When that look-up fails (the database is away), the
    request goes on unidentified and the `authenticated` dependency answers as it would.
    Public paths (/health, the docs and their assets) and `WAHTTP_AUTH=off` pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._public: frozenset[str] | None = None

    def _is_public(self, scope: Scope) -> bool:
        app = scope.get("app")
        if self._public is None:
            self._public = public_paths(app) if isinstance(app, FastAPI) else PUBLIC_PATHS
        path = str(scope["path"])
        assets = apidocs.ASSETS_PATH
        return path in self._public or (assets in self._public and path.startswith(assets + "/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth = getattr(getattr(scope.get("app"), "state", None), "auth", None)
        if (
            scope["type"] != "http"
            or not isinstance(auth, ApiAuth)
            or not auth.enabled
            or self._is_public(scope)
        ):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        if key is None:
            await _refuse(
                send,
                "missing_api_key",
                "an API key is required: send X-Api-Key: <key> or Authorization: Bearer <key>",
                "Bearer",
            )
            return
        key = key.strip()
        who: Principal | None = None
        if len(key) <= MAX_KEY_LENGTH and auth.is_admin(key):
            who = ADMIN
        elif SESSION_KEY_SHAPE.match(key):
            try:
                who = await auth.identify(key)
            except Exception:  # the database: let the dependency meet the same failure
                await self.app(scope, receive, send)
                return
        if who is None:
            await _refuse(
                send, "invalid_api_key", "the API key is not valid", 'Bearer error="invalid_token"'
            )
            return
        scope[PRINCIPAL_SCOPE_KEY] = who
        await self.app(scope, receive, send)


async def _refuse(send: Send, code: str, message: str, challenge: str) -> None:
    await send_error(
        send,
        401,
        code,
        message,
        headers=[(b"www-authenticate", challenge.encode()), (b"connection", b"close")],
    )
