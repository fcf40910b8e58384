"""What the service does with a session's events: message records and webhook events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from wahttp.server.messages import MessageRepository
from wahttp.server.webhooks.contract import (
    AckData,
    CallData,
    MessageData,
    PictureData,
    StatusData,
)
from wahttp.wa.client.events import CallOffer, ContactPicture, MessageAck, MessageReceived

if TYPE_CHECKING:
    from wahttp.server.sessions import ManagedSession

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendFailure:
    """Why a send failed: the server's ack error code (None: no code, e.g. no ack in time)."""

    code: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason}


class EventEmitter(Protocol):
    async def emit(
        self,
        session_id: str | None,
        type: str,
        data: Mapping[str, Any],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None: ...


# MessageReceived kinds that are protocol housekeeping rather than a message to announce.
UNANNOUNCED_KINDS = frozenset({"protocol", "sender_key"})


class ServiceEvents:
    """Records message status and turns events into webhook deliveries (outbox first)."""

    def __init__(self, messages: MessageRepository, webhooks: EventEmitter | None) -> None:
        self.messages = messages
        self.webhooks = webhooks

    async def _emit(
        self,
        session_id: str,
        type: str,
        data: Mapping[str, Any],
        conn: asyncpg.Connection | None = None,
    ) -> None:
        if self.webhooks is not None:
            await self.webhooks.emit(session_id, type, data, conn=conn)

    async def on_message(self, session_id: str, event: MessageReceived) -> None:
        """Record the message and queue its webhook in one transaction; a redelivered message
        (after a crash before the receipt went out) is recognised and not announced twice.

        Housekeeping between our own devices and the protocol (app-state key shares, history
        sync notices, sender-key distributions) is the client's business, not a message for
        the webhook: those kinds are not announced."""
        if event.kind in UNANNOUNCED_KINDS:
            return
        data: MessageData = {
            "id": event.id,
            "chat": event.chat,
            "sender": event.sender,
            "senderAlt": event.sender_alt,
            "fromMe": event.from_me,
            "timestamp": event.timestamp,
            "pushName": event.push_name,
            "contactName": event.contact_name,
            "type": event.kind,
            "text": event.text,
        }
        async with self.messages.transaction() as conn:
            recorded = await self.messages.record_incoming(
                session_id,
                event.id,
                event.chat,
                conn,
                from_me=event.from_me,
                push_name=event.push_name,
            )
            if not recorded:
                return
            if self.webhooks is not None:
                await self.webhooks.emit(session_id, "message", data, conn=conn)

    async def before_send(
        self, session_id: str, message_id: str, chat: str, payload: bytes | None = None
    ) -> None:
        """Record the message as pending, with its sent copy (`payload`, the serialised
        Message) for retry receipts: one write before anything goes out."""
        await self.messages.record_outgoing(session_id, message_id, chat, payload)

    async def after_send(
        self,
        session_id: str,
        message_id: str,
        chat: str,
        ok: bool,
        error: SendFailure | None = None,
    ) -> None:
        """`error`: why the server refused it (its ack's code and what that means), if known."""
        status = "sent" if ok else "failed"
        # The status and its webhook event in one transaction on one connection.
        async with self.messages.transaction() as conn:
            moved = await self.messages.set_status(session_id, [message_id], status, conn)
            if moved:
                if error is not None and not ok:
                    await self.messages.record_error(
                        session_id, message_id, error.code, error.reason, conn
                    )
                await self._ack(session_id, message_id, chat, status, None, conn=conn, error=error)
        # else a receipt overtook the server's ack and reported "sent" already (on_ack)

    async def on_ack(self, session_id: str, event: MessageAck) -> None:
        async with self.messages.transaction() as conn:
            moved = await self.messages.set_status(session_id, list(event.ids), event.status, conn)
            for message_id, previous in moved:
                if previous == "pending":
                    # The receipt overtook the server's ack: the message was sent, say so first.
                    await self._ack(session_id, message_id, event.chat, "sent", None, conn=conn)
                await self._ack(
                    session_id, message_id, event.chat, event.status, event.device, conn=conn
                )

    async def _ack(
        self,
        session_id: str,
        message_id: str,
        chat: str,
        status: str,
        device: str | None,
        *,
        conn: asyncpg.Connection,
        error: SendFailure | None = None,
    ) -> None:
        data: AckData = {"id": message_id, "chat": chat, "status": status, "device": device}
        if status == "failed":
            data["error"] = error.to_json() if error is not None else None
        await self._emit(session_id, "message.ack", data, conn)

    async def on_call(self, session_id: str, event: CallOffer) -> None:
        """An incoming call offer: a `call` webhook event (through the outbox)."""
        data: CallData = {
            "id": event.id,
            "from": event.from_,
            "callerPn": event.caller_pn,
            "isVideo": event.is_video,
            "isGroup": event.is_group,
            "groupJid": event.group_jid,
            "timestamp": event.timestamp,
            "offline": event.offline,
            "rejected": event.rejected,
        }
        await self._emit(session_id, "call", data)

    async def on_picture(self, session_id: str, event: ContactPicture) -> None:
        """A profile picture changed: a `contact.picture` webhook event."""
        data: PictureData = {
            "jid": event.jid,
            "author": event.author,
            "pictureId": event.picture_id,
            "removed": event.removed,
            "timestamp": event.timestamp,
        }
        await self._emit(session_id, "contact.picture", data)

    async def on_status(self, session: ManagedSession) -> None:
        last = session.last_disconnect
        data: StatusData = {
            "state": str(session.state),
            "since": session.since.isoformat(),
            "jid": session.jid,
            "lastDisconnect": (
                {"code": last.code, "reason": last.reason, "at": last.at.isoformat()}
                if last
                else None
            ),
            "at": datetime.now(UTC).isoformat(),
        }
        await self._emit(session.id, "session.status", data)
