"""The FastAPI application: its lifespan opens the database and runs the session manager."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from wahttp import __version__, apidocs
from wahttp.server import auth, errors
from wahttp.server.at_rest import startup_sealer
from wahttp.server.cluster import Cluster
from wahttp.server.db import Database, start_embedded
from wahttp.server.deps import Services
from wahttp.server.edge import ResponseHeaders
from wahttp.server.events import ServiceEvents
from wahttp.server.forwarding import Forwarder, ForwardToOwner
from wahttp.server.http_guard import RejectControlCharacters
from wahttp.server.limits import BodySizeLimit
from wahttp.server.messages import MessageRepository, SessionSentStore
from wahttp.server.ratelimit import SendRateLimiter
from wahttp.server.retention import Retention
from wahttp.server.routes import health, keys, sessions
from wahttp.server.routes import webhooks as webhook_routes
from wahttp.server.sessions import SessionManager, StoreFactory
from wahttp.server.settings import Settings
from wahttp.server.store import PostgresAuthStore, SessionRepository
from wahttp.server.webhooks import Webhooks
from wahttp.wa.auth.mirror import FolderMirror
from wahttp.wa.auth.sealing import Sealer
from wahttp.wa.auth.store import AuthStore

log = logging.getLogger(__name__)

# How long the folder mirror gathers a session's changes before writing them (see mirror.py).
MIRROR_BATCH_DELAY = 0.25


async def open_database(settings: Settings, stack: contextlib.AsyncExitStack) -> Database:
    dsn = settings.database_url
    if not dsn:
        dsn, embedded = await start_embedded(settings.data_dir)
        stack.push_async_callback(embedded.stop)
        log.info("using the embedded PostgreSQL under %s", settings.data_dir)
    db = await Database.connect(
        dsn, max_size=settings.db_pool_size, acquire_timeout=settings.db_timeout
    )
    stack.push_async_callback(db.close)
    await db.migrate()
    return db


def store_factory(db: Database, settings: Settings, sealer: Sealer | None = None) -> StoreFactory:
    def make(session_id: str) -> AuthStore:
        store: AuthStore = PostgresAuthStore(db, session_id, sealer)
        if settings.auth_mirror:
            folder = settings.auth_dir / session_id
            store = FolderMirror(
                store,
                folder,
                sealer=sealer,
                session_id=session_id,
                write_behind=True,
                batch_delay=MIRROR_BATCH_DELAY,
            )
        return store

    return make


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            sealer = startup_sealer(settings)  # auth state at rest; warns once without a key
            db = await open_database(settings, stack)
            app.state.auth = auth.setup(settings, db)  # API keys; never logs one
            repo = SessionRepository(db, sealer)
            hooks = Webhooks(
                db,
                global_url=settings.webhook_url,
                global_secret=settings.webhook_secret,
                max_attempts=settings.webhook_max_attempts,
                base_delay=settings.webhook_backoff_base,
                max_delay=settings.webhook_backoff_max,
                timeout=settings.webhook_timeout,
                concurrency=settings.webhook_concurrency,
                target_concurrency=settings.webhook_target_concurrency,
                policy=settings.webhook_policy(),
                sealer=sealer,
            )
            hooks.start()
            # Runs after the sessions stop (below) and before the pool closes.
            stack.push_async_callback(hooks.stop, settings.shutdown_timeout)

            async def forget(session_id: str) -> None:
                await repo.delete(session_id)

            messages = MessageRepository(db, sealer)  # sent copies sealed like auth state
            retention = Retention(
                db,
                hooks,
                message_days=settings.message_retention_days,
                webhook_days=settings.webhook_retention_days,
                interval=settings.retention_interval,
            )
            retention.start()
            stack.push_async_callback(retention.stop)  # before the pool closes
            events = ServiceEvents(messages, hooks)
            manager = SessionManager(
                store_factory(db, settings, sealer),
                settings.client_config,
                auth_dir=Path(settings.auth_dir),
                reconnect_base=settings.reconnect_base,
                reconnect_max=settings.reconnect_max,
                pairing_wait=settings.pairing_wait,
                on_logged_out=forget,
                events=events,
                sent_store=lambda session_id: SessionSentStore(messages, session_id),
            )
            manager.add_listener(events.on_status)

            async def start_session(session_id: str, push_name: str | None) -> None:
                manager.add(session_id, push_name=push_name)

            # Sessions run on the worker that owns them (one worker: all of them).
            cluster = Cluster(
                db,
                start_session=start_session,
                stop_session=manager.release,
                hosted=manager.sessions.keys,  # a live view: no copy per request
                url=settings.advertised_url(),
                ttl=settings.lease_ttl,
                interval=settings.lease_interval,
                rebalance=settings.rebalance,
            )
            manager.add_listener(lambda s: cluster.record_state(s.id, str(s.state)))
            app.state.services = Services(settings, db, repo, manager, messages, hooks, cluster)
            forwarder = Forwarder(cluster.elsewhere, lambda: cluster.worker_id)
            stack.push_async_callback(forwarder.aclose)
            app.state.forwarder = forwarder
            await cluster.start()
            log.info("worker %s runs %d sessions", cluster.worker_id, len(manager.sessions))
            try:
                yield
            finally:
                app.state.forwarder = None
                await cluster.stop(lambda: manager.stop_all(settings.shutdown_timeout))

    app = FastAPI(
        title="wahttp",
        version=__version__,
        description="Self-hosted WhatsApp HTTP API: sessions, pairing codes, messages, webhooks.",
        lifespan=lifespan,
        responses=errors.OPENAPI_ERRORS,
        docs_url=None,  # apidocs serves the docs pages with their scripts from here, not a CDN
        redoc_url=None,
        redirect_slashes=False,  # `/sessions/` is a 404, not a redirect built from the Host header
    )
    apidocs.install(app)
    errors.install(app)
    app.add_middleware(ForwardToOwner)  # inside the body limit: forwarded bodies are bounded
    app.add_middleware(auth.KeyGate)  # the key, before a body is read or a request forwarded
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, timeout=settings.request_timeout
    )
    app.add_middleware(ResponseHeaders)  # Cache-Control: no-store on every answer
    app.add_middleware(RejectControlCharacters)  # outermost: before any lookup of a URL's parts
    app.state.send_limiter = SendRateLimiter(settings.send_rate, settings.send_burst)
    app.state.pair_limiter = SendRateLimiter(
        settings.pair_rate, settings.pair_burst, subject="new pairing codes"
    )
    app.include_router(health.router)
    app.include_router(sessions.router)
    app.include_router(webhook_routes.router)
    app.include_router(keys.router)
    auth.check_routes(app)  # every route but /health and the docs needs an API key
    return app
