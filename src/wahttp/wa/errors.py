"""The protocol library's error hierarchy: every failure it raises is a WAError."""

from __future__ import annotations


class WAError(Exception):
    """Base of every error raised by wahttp.wa."""


class DecodeError(WAError):
    """Malformed binary node (bad tag, truncated, oversized, too deep)."""


class FrameError(WAError):
    """Malformed transport framing (bad intro header, oversized frame)."""


class HandshakeError(WAError):
    """The Noise handshake failed: bad message, failed decryption or an untrusted certificate."""


class CertificateError(HandshakeError):
    """The server's certificate chain does not verify against the trusted root key."""


class CipherError(WAError):
    """A transport frame failed authentication (wrong key, tampered or replayed)."""


class ConnectionClosed(WAError):
    """The connection ended; `code` follows WhatsApp's close reasons (401, 408, 440, 515, 5xx)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed ({code}){': ' + reason if reason else ''}")
        self.code = code
        self.reason = reason


class IQError(WAError):
    """The server answered an iq with type=error; `code` is its error code."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(f"iq error {code}{': ' + text if text else ''}")
        self.code = code
        self.text = text


class PairingError(WAError):
    """Linking a companion failed (bad HMAC or signature, refs ran out, wrong code)."""


class StoreError(WAError):
    """The auth store could not load or save state."""
