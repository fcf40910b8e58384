"""The WhatsApp Web multi-device client: one file per feature behind the Client facade."""

from wahttp.wa.client.client import Client
from wahttp.wa.client.config import ClientConfig
from wahttp.wa.client.events import (
    CallOffer,
    Connected,
    ContactPicture,
    Disconnected,
    Event,
    LoggedOut,
    MessageAck,
    MessageFailed,
    MessageReceived,
    OfflineSyncCompleted,
    PairSuccess,
    QRCode,
    UndecryptableMessage,
)

__all__ = [
    "CallOffer",
    "Client",
    "ClientConfig",
    "Connected",
    "ContactPicture",
    "Disconnected",
    "Event",
    "LoggedOut",
    "MessageAck",
    "MessageFailed",
    "MessageReceived",
    "OfflineSyncCompleted",
    "PairSuccess",
    "QRCode",
    "UndecryptableMessage",
]
