"""Sessions: create, list, delete, status, QR, and linking by pairing code."""

from __future__ import annotations

import dataclasses
import io
import secrets
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Depends, Path, Query, Response

from wahttp.server.auth import require_admin, require_session_access
from wahttp.server.chats import list_chats
from wahttp.server.cluster import SessionPlacement
from wahttp.server.deps import Services, ServicesDep, SessionRow, live_session
from wahttp.server.errors import ApiError
from wahttp.server.ratelimit import PairLimiterDep, SendLimiterDep
from wahttp.server.routes.webhooks import check_webhook_target
from wahttp.server.schemas import (
    INT64_MAX,
    MAX_CHATS_PAGE,
    MAX_TEXT,
    Chat,
    Contact,
    Created,
    CreateSession,
    Deleted,
    Disconnect,
    Done,
    MessageError,
    MessageStatus,
    PairRequest,
    PairResponse,
    QRResponse,
    SendMessage,
    SendResponse,
    SessionStatus,
    SessionSummary,
    parse_recipient,
)
from wahttp.server.sessions import CertificateRefused, ManagedSession
from wahttp.server.state import SessionState
from wahttp.server.store import SessionExists
from wahttp.wa.client import appstate
from wahttp.wa.client.send import SendError
from wahttp.wa.errors import PairingError, WAError
from wahttp.wa.jid import Jid

# A session key reaches only its own /sessions/{session_id}/... routes; the rest is admin-only.
router = APIRouter(
    prefix="/sessions", tags=["sessions"], dependencies=[Depends(require_session_access)]
)
PAIR_MESSAGE = "Enter this code in WhatsApp to pair your device"


@router.post("", status_code=201, response_model=Created)
async def create_session(services: ServicesDep, body: CreateSession | None = None) -> Created:
    """Create a session and start its socket in the background."""
    body = body or CreateSession()
    if body.webhook_url is not None:
        await check_webhook_target(services.webhooks, body.webhook_url)
    session_id = body.id or secrets.token_hex(8)
    try:  # the insert decides: many creating one id at once get one 201 and 409s
        await services.repo.create(
            session_id, webhook_url=body.webhook_url, push_name=body.push_name
        )
    except SessionExists as exc:
        raise ApiError(
            409, "session_exists", f"a session with id {session_id!r} exists already"
        ) from exc
    await services.cluster.claim(session_id)  # runs here, or on a worker that claimed it first
    return Created(id=session_id)


@router.get("", response_model=list[SessionSummary])
async def list_sessions(services: ServicesDep) -> list[SessionSummary]:
    rows = await services.repo.list()
    placements = await services.cluster.placements()
    out = []
    for row in rows:
        live = services.manager.get(row.id)
        state = live.state if live is not None else _placed_state(placements.get(row.id))
        out.append(
            SessionSummary(
                id=row.id, created_at=row.created_at, updated_at=row.updated_at, status=state
            )
        )
    return out


def _placed_state(placement: SessionPlacement | None) -> SessionState:
    """A session another worker runs, as its owner last reported it."""
    if placement is None:
        return SessionState.STOPPED
    if not placement.live:  # its worker is gone: being taken over
        return SessionState.RECONNECTING
    try:
        return SessionState(placement.state)
    except ValueError:
        return SessionState.CONNECTING


@router.delete("/{session_id}", response_model=Deleted, dependencies=[Depends(require_admin)])
async def delete_session(row: SessionRow, services: ServicesDep) -> Deleted:
    """Log out from WhatsApp when linked, stop the socket, remove the folder and the row."""
    await services.manager.remove(row.id, logout=True)
    await services.repo.delete(row.id)
    return Deleted(success=True, id=row.id)


@router.get("/{session_id}/status", response_model=SessionStatus)
async def session_status(row: SessionRow, services: ServicesDep) -> SessionStatus:
    session = await live_session(services, row.id)
    linked = await session.is_linked()
    last = session.last_disconnect
    return SessionStatus(
        id=row.id,
        state=session.state,
        since=session.since,
        jid=session.jid,
        lid=session.lid,
        has_auth=linked,
        linked=linked,
        qr_available=session.qr is not None,
        last_disconnect=Disconnect(code=last.code, reason=last.reason, at=last.at)
        if last
        else None,
        worker=services.cluster.worker_id,
        received_pending_notifications=session.received_pending_notifications,
    )


@router.get("/{session_id}/contacts", response_model=list[Contact], response_model_by_alias=True)
async def session_contacts(row: SessionRow, services: ServicesDep) -> list[Contact]:
    """Contact names and chat settings (archive, pin, mute) the phone synced (app state)."""
    session = await live_session(services, row.id)
    records = await appstate.chats(session.client)
    out = []
    for jid, rec in sorted(records.items()):
        if not isinstance(rec, dict):
            continue
        muted = rec.get("mutedUntil")
        out.append(
            Contact(
                jid=jid,
                name=rec.get("name") if isinstance(rec.get("name"), str) else None,
                archived=bool(rec.get("archived")),
                pinned=bool(rec.get("pinned")),
                mutedUntil=muted if isinstance(muted, int) else None,
            )
        )
    return out


@router.get("/{session_id}/chats", response_model=list[Chat], response_model_by_alias=True)
async def session_chats(
    row: SessionRow,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_CHATS_PAGE, description="chats per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX, description="chats to skip")] = 0,
) -> list[Chat]:
    """The session's chats (those with messages in its store), newest last message first, with
    names and flags from the phone's app state and unread counts."""
    session = await live_session(services, row.id)
    entries = await list_chats(
        services.db, session.client.store, row.id, limit=limit, offset=offset
    )
    return [
        Chat(
            jid=e.jid,
            name=e.name,
            last_message_at=e.last_message_at,
            unread=e.unread,
            push_name=e.push_name,
            archived=e.archived,
            pinned=e.pinned,
            muted_until=e.muted_until,
            marked_unread=e.marked_unread,
        )
        for e in entries
    ]


@router.get(
    "/{session_id}/qr",
    response_model=QRResponse,
    responses={200: {"content": {"image/png": {}}}},
)
async def session_qr(
    row: SessionRow,
    services: ServicesDep,
    format: Annotated[Literal["json", "png"], Query(description="json or png")] = "json",
) -> Response | QRResponse:
    """The current linking QR (refreshed as it expires); starts the session if it is stopped."""
    session = await live_session(services, row.id)
    if await session.is_linked():
        raise ApiError(409, "already_linked", "the session is linked already")
    if session.qr is None:
        try:
            await session.wait_registering(services.settings.pairing_wait)
        except TimeoutError as exc:
            raise ApiError(503, "qr_unavailable", "no QR yet: WhatsApp is not reachable") from exc
        except CertificateRefused as exc:
            raise certificate_refused(exc) from exc
    qr = session.qr
    if qr is None:
        raise ApiError(503, "qr_unavailable", "no QR at the moment, try again")
    if format == "png":
        buffer = io.BytesIO()
        segno.make(qr, error="l").save(buffer, kind="png", scale=6, border=2)
        return Response(buffer.getvalue(), media_type="image/png")
    return QRResponse(qr=qr)


def certificate_refused(exc: CertificateRefused) -> ApiError:
    """503: WhatsApp's server (or whatever answers at WAHTTP_WA_URL) is not the one we trust."""
    return ApiError(503, "server_certificate_refused", str(exc))


def open_session(services: Services, session_id: str) -> ManagedSession:
    """The live session if it is open; 409 naming its state otherwise."""
    session = services.manager.get(session_id)
    if session is None or session.state != SessionState.OPEN:
        state = session.state if session is not None else SessionState.STOPPED
        raise ApiError(409, "session_not_open", f"the session is {state}", state=str(state))
    return session


@router.post(
    "/{session_id}/send-message",
    response_model=SendResponse,
    responses={
        409: {"description": "the session is not open"},
        413: {"description": "too long"},
        429: {"description": "over the session's send rate: see Retry-After"},
    },
)
async def send_message(
    row: SessionRow, body: SendMessage, services: ServicesDep, limiter: SendLimiterDep
) -> SendResponse:
    """Send a text, end-to-end encrypted; answers once WhatsApp's server has accepted it."""
    try:
        to = parse_recipient(body.to)
    except ValueError as exc:
        raise ApiError(400, "invalid_recipient", f"to: {exc}") from exc
    if len(body.message) > MAX_TEXT:
        raise ApiError(413, "message_too_long", f"a text has at most {MAX_TEXT} characters")
    session = open_session(services, row.id)
    limiter.check(row.id)  # 429 with Retry-After over WAHTTP_SEND_RATE / WAHTTP_SEND_BURST
    try:
        result = await session.send_text(to, body.message)
    except SendError as exc:
        # The message's id and the server's reason, when it refused it (status `failed`).
        extra: dict[str, Any] = {}
        if exc.message_id is not None:
            extra = {"messageId": exc.message_id, "ack": {"code": exc.code, "reason": exc.reason}}
        raise ApiError(502, "send_failed", str(exc), **extra) from exc
    except WAError as exc:
        raise ApiError(503, "not_connected", f"the message could not be sent: {exc}") from exc
    return SendResponse(success=True, messageId=result.id, timestamp=result.timestamp)


@router.get("/{session_id}/messages/{message_id}", response_model=MessageStatus)
async def message_status(
    row: SessionRow, message_id: Annotated[str, Path(max_length=128)], services: ServicesDep
) -> MessageStatus:
    """Delivery status of a message this session sent (or received)."""
    found = await services.messages.get(row.id, message_id)
    if found is None:
        raise ApiError(404, "message_not_found", f"no message {message_id!r} in this session")
    fields = dataclasses.asdict(found)
    code, reason = fields.pop("error_code"), fields.pop("error_reason")
    error = MessageError(code=code, reason=reason) if reason is not None else None
    return MessageStatus(**fields, error=error)


@router.post("/{session_id}/messages/{message_id}/read", response_model=Done)
async def mark_read(
    row: SessionRow, message_id: Annotated[str, Path(max_length=128)], services: ServicesDep
) -> Done:
    """Send a read receipt for a message this session received (the sender sees it read)."""
    found = await services.messages.get(row.id, message_id)
    if found is None or found.from_me:
        raise ApiError(404, "message_not_found", f"no received message {message_id!r}")
    session = open_session(services, row.id)
    try:
        await session.client.send_read(Jid.parse(found.chat), [message_id])
    except WAError as exc:
        raise ApiError(503, "not_connected", f"the receipt could not be sent: {exc}") from exc
    await services.messages.mark_read_incoming(row.id, message_id)
    return Done(success=True, id=message_id)


@router.post(
    "/{session_id}/pair-request",
    response_model=PairResponse,
    responses={429: {"description": "too many new codes for this session: see Retry-After"}},
)
async def pair_request(
    row: SessionRow, body: PairRequest, services: ServicesDep, limiter: PairLimiterDep
) -> PairResponse:
    """Ask for a pairing code for this phone number; the user enters it on the phone.

    While a code for the same number is pending, it is answered again (to every caller at
    once too); only new codes count against WAHTTP_PAIR_BURST / WAHTTP_PAIR_RATE (429).
    """
    session = await live_session(services, row.id)
    if await session.is_linked():
        raise ApiError(409, "already_linked", "the session is linked already; delete it to re-pair")
    try:
        code = await session.request_pairing_code(
            body.number, before_new=lambda: limiter.check(row.id)
        )
    except TimeoutError as exc:
        raise ApiError(503, "not_connected", "could not reach WhatsApp to request a code") from exc
    except CertificateRefused as exc:
        raise certificate_refused(exc) from exc
    except PairingError as exc:
        raise ApiError(409, "pairing_failed", str(exc)) from exc
    except WAError as exc:
        raise ApiError(502, "whatsapp_error", f"WhatsApp refused the request: {exc}") from exc
    return PairResponse(success=True, pairingCode=code, message=PAIR_MESSAGE)
