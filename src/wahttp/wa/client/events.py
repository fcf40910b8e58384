"""What a client tells its owner: typed events, delivered in order to registered handlers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QRCode:
    """A QR to show the user; replaced by the next one when it expires."""

    qr: str


@dataclass(frozen=True, slots=True)
class PairSuccess:
    """The phone linked this device; the server restarts the stream next (515)."""

    jid: str
    lid: str | None
    platform: str | None


@dataclass(frozen=True, slots=True)
class Connected:
    """Logged in, pre-keys checked, active: ready to send and receive."""

    jid: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended. `code` uses WhatsApp/Baileys reasons (408, 428, 440, 515, 5xx)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """The account removed this device (401/403/406): the stored auth is no longer valid."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A decrypted message. `chat` is the conversation, `sender` the device that wrote it."""

    id: str
    chat: str
    sender: str
    from_me: bool
    timestamp: int
    push_name: str | None
    kind: str  # text, reaction, protocol, sender_key, unknown
    text: str | None
    sender_alt: str | None = None  # the sender's LID (or PN) when the server tells it
    contact_name: str | None = None  # the chat's name in our address book (app state)


@dataclass(frozen=True, slots=True)
class MessageAck:
    """A receipt for messages we sent: `status` is delivered, read or played."""

    ids: tuple[str, ...]
    chat: str
    device: str
    status: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class MessageFailed:
    """The server refused a message we sent (`<ack error=…>`): it was not delivered.

    `code` is the ack's error code (463: no valid privacy token, 479: invalid stanza, ...;
    None when it was not a number), `reason` says what it means (`ack_errors.REASONS`)."""

    id: str
    chat: str
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class UndecryptableMessage:
    """A message that could not be decrypted; a retry receipt asked the sender to resend it."""

    id: str
    chat: str
    sender: str
    retry_count: int


@dataclass(frozen=True, slots=True)
class CallOffer:
    """Someone is calling us (wahttp cannot answer: no voice or video). `from_` is the caller
    (its PN or LID), `chat` who the stanza came from; `rejected` when WAHTTP_REJECT_CALLS
    declined it."""

    id: str
    from_: str
    chat: str
    caller_pn: str | None
    is_video: bool
    is_group: bool
    group_jid: str | None
    timestamp: int
    offline: bool
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class ContactPicture:
    """A profile picture changed (`picture` notification, or ours via `account_sync`).

    `jid` is whose picture (a user or a group), `author` who changed it, `picture_id` the new
    picture's id (None when removed or not told)."""

    jid: str
    author: str | None
    picture_id: str | None
    removed: bool
    timestamp: int


@dataclass(frozen=True, slots=True)
class OfflineSyncCompleted:
    """The server delivered everything that waited for us (`<ib><offline count>`); what
    arrives from now on is live. Baileys: `receivedPendingNotifications`."""

    count: int


Event = (
    QRCode
    | PairSuccess
    | Connected
    | Disconnected
    | LoggedOut
    | MessageReceived
    | MessageAck
    | MessageFailed
    | UndecryptableMessage
    | CallOffer
    | ContactPicture
    | OfflineSyncCompleted
)
