"""The tag -> handler table for nodes the server sends unprompted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wahttp.wa.client import call, ib, iq, login, notification, receipts, receive, stream

if TYPE_CHECKING:
    from wahttp.wa.binary import Node
    from wahttp.wa.client.client import Client

Handler = Callable[["Client", "Node"], Awaitable[None]]

TABLE: dict[str, Handler] = {
    "iq": iq.on_iq,
    "success": login.on_success,
    "failure": stream.on_failure,
    "stream:error": stream.on_stream_error,
    "xmlstreamend": stream.on_stream_end,
    "ib": ib.on_ib,
    "notification": notification.on_notification,
    "receipt": receipts.on_receipt,
    "message": receive.on_message,
    "ack": receipts.on_ack,
    "call": call.on_call,
}
