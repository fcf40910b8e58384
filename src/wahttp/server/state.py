"""The states a session can be in; the status endpoint and webhooks report exactly these."""

from __future__ import annotations

import enum


class SessionState(enum.StrEnum):
    CREATED = "created"
    """The session exists but its socket has not been started."""
    CONNECTING = "connecting"
    """Opening the stream to WhatsApp (handshake, login)."""
    AWAITING_PAIRING = "awaiting_pairing"
    """Not linked yet; the stream is open and shows a QR or waits for a pairing code."""
    OPEN = "open"
    """Linked, logged in and ready."""
    RECONNECTING = "reconnecting"
    """The stream dropped; waiting (with backoff) before the next attempt."""
    LOGGED_OUT = "logged_out"
    """The phone unlinked this device (or it was deleted); its auth state is gone."""
    STOPPED = "stopped"
    """Not running: shut down, replaced by another connection, or given up (see last_disconnect)."""
