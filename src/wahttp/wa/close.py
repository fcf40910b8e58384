"""Why a WhatsApp connection ended: one `CloseCode` type, and what a client does next.

The numbers are WhatsApp's (a `<failure reason>`, a `<stream:error code>`) as Baileys names them
in `DisconnectReason` (Types/index.ts): they reach the API unchanged in `lastDisconnect.code`.
Two are the service's own and say so: CERTIFICATE_REFUSED (495, no WhatsApp code exists for a
Noise certificate chain we refuse) and FAILED (500 as Baileys' badSession, for an attempt that
failed before the server said anything). A server may send a code not listed here; every
function takes a plain int. Anchor: whatsmeow's `ConnectFailureReason` with `IsLoggedOut()`.
"""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """A close reason; `int` compatible, so it is written as its number everywhere."""

    # The account removed this device (<failure 401>, or <conflict type="device_removed">).
    LOGGED_OUT = 401
    # The account is banned for a while.
    TEMP_BANNED = 402
    # The account is locked (Baileys: forbidden); the device is logged out.
    LOCKED = 403
    # The client version we announced is no longer accepted (see version.py).
    OUTDATED = 405
    # Logged out for a reason WhatsApp does not tell.
    UNKNOWN_LOGOUT = 406
    # No answer in time: keepalive unanswered or the handshake timed out (Baileys:
    # connectionLost / timedOut). Before linking, the QR refs ran out (QR_ENDED).
    CONNECTION_LOST = 408
    QR_ENDED = 408
    # The user agent we sent is refused.
    BAD_USER_AGENT = 409
    # The account has no multi-device (<ib><downgrade_webclient>; Baileys: multideviceMismatch).
    MD_NOT_ENABLED = 411
    # The socket ended without a WhatsApp reason, or we closed it (Baileys: connectionClosed).
    TRANSPORT_CLOSED = 428
    # Another connection of this device took over (<conflict>; Baileys: connectionReplaced).
    REPLACED = 440
    # A broken stream (Baileys: badSession); ours too, as FAILED (see the module docstring).
    BAD_SESSION = 500
    FAILED = 500
    # WhatsApp's service is unavailable (Baileys: unavailableService).
    UNAVAILABLE = 503
    # The server asks for a new connection now, as after pairing (Baileys: restartRequired).
    RESTART = 515
    # Ours: the server's certificate chain was refused (wrong WAHTTP_WA_ROOT_KEY or URL).
    CERTIFICATE_REFUSED = 495


_LOGGED_OUT = frozenset({CloseCode.LOGGED_OUT, CloseCode.LOCKED, CloseCode.UNKNOWN_LOGOUT})
# Closes after which retrying cannot help: banned, outdated client, refused user agent, no MD.
_FATAL = frozenset(
    {
        CloseCode.TEMP_BANNED,
        CloseCode.OUTDATED,
        CloseCode.BAD_USER_AGENT,
        CloseCode.MD_NOT_ENABLED,
    }
)


def is_logged_out(code: int) -> bool:
    """The stored auth is no longer valid: the device was removed (401, 403, 406)."""
    return code in _LOGGED_OUT


def is_fatal(code: int) -> bool:
    """Reconnecting cannot help until the configuration or the account changes."""
    return code in _FATAL


def restarts(code: int) -> bool:
    """The server asked for a new connection at once (515)."""
    return code == CloseCode.RESTART


class Next(enum.Enum):
    """What a session does after a close (`decide`)."""

    # Connect again at once, the backoff reset (515).
    RESTART = "restart"
    # Connect again after the backoff: a drop, a timeout, a refusal that may pass.
    RECONNECT = "reconnect"
    # The device was removed: forget the auth state and end.
    LOGGED_OUT = "logged out"
    # Another connection of this device took over: end, or the two would replace each other.
    REPLACED = "replaced"
    # Ban, outdated version, refused user agent, no multi-device: end until reconfigured.
    FATAL = "fatal"
    # Not linked and nobody scanned the QR codes: end until someone asks again.
    STOP = "stop"


def needs_linked(code: int) -> bool:
    """Whether `decide` depends on `linked` for this code (a caller may skip looking it up)."""
    return code == CloseCode.QR_ENDED


def decide(code: int, *, linked: bool) -> Next:
    """What to do after a close with `code`; `linked`: the device has linked credentials
    (only 408 depends on it: a lost connection when linked, the QR codes run out when not)."""
    if restarts(code):
        return Next.RESTART
    if is_logged_out(code):
        return Next.LOGGED_OUT
    if code == CloseCode.REPLACED:
        return Next.REPLACED
    if is_fatal(code):
        return Next.FATAL
    if code == CloseCode.QR_ENDED and not linked:
        return Next.STOP
    return Next.RECONNECT
