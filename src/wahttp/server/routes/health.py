"""GET /health: the process, the database and a count of sessions by state."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from wahttp.server.deps import ServicesDep
from wahttp.server.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(services: ServicesDep) -> JSONResponse:
    try:
        await services.db.ping()
        database = "ok"
    except Exception:
        database = "unavailable"
    states = Counter(str(s.state) for s in services.manager.sessions.values())
    body = Health(
        status="ok" if database == "ok" else "degraded",
        timestamp=datetime.now(UTC),
        database=database,
        sessions={"total": sum(states.values()), **states},
        worker=services.cluster.worker_id,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if database == "ok" else 503)
