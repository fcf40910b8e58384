"""FastAPI dependencies: the service container and validated session lookups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from wahttp.server.cluster import Cluster
from wahttp.server.db import Database
from wahttp.server.errors import ApiError, not_found
from wahttp.server.messages import MessageRepository
from wahttp.server.schemas import SESSION_ID_PATTERN
from wahttp.server.sessions import ManagedSession, SessionManager
from wahttp.server.settings import Settings
from wahttp.server.store import SessionRepository
from wahttp.server.store import SessionRow as StoredSession
from wahttp.server.webhooks import Webhooks


@dataclass
class Services:
    settings: Settings
    db: Database
    repo: SessionRepository
    manager: SessionManager
    messages: MessageRepository
    webhooks: Webhooks
    cluster: Cluster


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
SessionIdPath = Annotated[
    str, Path(pattern=SESSION_ID_PATTERN, description="session id", examples=["alice"])
]


async def session_row(session_id: SessionIdPath, services: ServicesDep) -> StoredSession:
    row = await services.repo.get(session_id)
    if row is None:
        raise not_found(session_id)
    return row


async def live_session(services: Services, session_id: str) -> ManagedSession:
    """The session as this worker runs it; claimed (and started) here if nobody live runs it."""
    session = services.manager.get(session_id)
    if session is None and await services.cluster.claim(session_id):
        session = services.manager.get(session_id)
    if session is None:  # another worker took it a moment ago
        raise ApiError(
            503,
            "session_moving",
            "the session is moving to another worker; retry shortly",
            headers={"Retry-After": "2"},
        )
    return session


SessionRow = Annotated[StoredSession, Depends(session_row)]
