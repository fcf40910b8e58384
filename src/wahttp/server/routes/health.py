"""GET (and HEAD) /health: whether this worker can do its job, and its sessions by state.

200 "ok" only when the database answers, this worker is a live cluster member whose scan loop
runs (lease renewed, scans succeeding), and none of its sessions is stuck; 503 "degraded"
otherwise, with `checks` saying what is wrong. Load balancers and orchestrators should route
by the status code. The worker id (which names the host and pid) is shown only to a caller
with the admin key.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from wahttp.server.auth import ApiAuth
from wahttp.server.deps import ServicesDep
from wahttp.server.schemas import Health

router = APIRouter(tags=["health"])


def _admin(request: Request) -> bool:
    auth = getattr(request.app.state, "auth", None)
    if not isinstance(auth, ApiAuth):
        return False
    key = request.headers.get("x-api-key")
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else None
    return auth.is_admin_key(key)


@router.head("/health", include_in_schema=False)  # the same answer, for HEAD probes
@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request, services: ServicesDep) -> JSONResponse:
    try:
        await services.db.ping()
        database = "ok"
    except Exception:  # DatabaseUnavailable, or anything else: not ok
        database = "unavailable"
    sessions = services.manager.sessions.values()
    states = Counter(str(s.state) for s in sessions)
    stuck = sum(1 for s in sessions if s.stuck)
    checks = {
        "database": database,
        "cluster": services.cluster.problem() or "ok",
        "sessions": f"{stuck} stuck" if stuck else "ok",
    }
    healthy = all(value == "ok" for value in checks.values())
    body = Health(
        status="ok" if healthy else "degraded",
        timestamp=datetime.now(UTC),
        database=database,
        sessions={"total": sum(states.values()), **states},
        checks=checks,
        worker=services.cluster.worker_id if _admin(request) else None,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if healthy else 503)
